/** Public surface of the picker, for the demo page and for embedding (`npm run build:lib`). */
export { ImagePicker, type ImagePickerHandle, type ImagePickerProps } from "./ImagePicker";
export { DEFAULT_STRINGS, imageLabel, type PickerStrings } from "./labels";
export type { LibraryFilters } from "./api";
export type { FetchPage, PageResult } from "./pageLoader";
export { PageError } from "./pageLoader";
export type { FetchNewer } from "./usePagedLibrary";
export type { NewerImages } from "./api";
export type { LibraryImage, LibraryPage } from "./types";
