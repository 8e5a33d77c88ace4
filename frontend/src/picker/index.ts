/** Public surface of the picker, for the demo page and for embedding in the Playground. */
export { ImagePicker, type ImagePickerProps } from "./ImagePicker";
export type { LibraryImage, LibraryPage } from "./types";
