/**
 * An example host for the library build (README "Embedding"). Type-checked with the app
 * (`npm run build`), never bundled into it. A real host imports from the package instead:
 *   import { ImagePicker, type ImagePickerHandle } from "thumbs-picker";
 *   import "thumbs-picker/picker.css";
 */
import { useMemo, useRef, useState } from "react";
import { ImagePicker, type ImagePickerHandle, type LibraryImage, type PickerStrings } from "../picker";

export function HostExample({ token }: { token: string }) {
  const picker = useRef<ImagePickerHandle>(null);
  const [selected, setSelected] = useState<string[]>([]);
  const [pipeline, setPipeline] = useState<string | undefined>(undefined);
  const [chosen, setChosen] = useState<LibraryImage[]>([]);
  // Memoized: a new object each render would re-render every cell.
  const strings = useMemo<Partial<PickerStrings>>(
    () => ({ gridLabel: "Bildbibliothek", retry: "Erneut versuchen", previewUnavailable: "Keine Vorschau" }),
    [],
  );
  const headers = useMemo(() => ({ Authorization: `Bearer ${token}` }), [token]);
  const filters = useMemo(() => ({ pipeline }), [pipeline]);

  return (
    <div style={{ height: 600, ["--tp-accent" as string]: "#7c3aed" }}>
      <button type="button" onClick={() => picker.current?.refresh()}>
        Reload
      </button>
      <button type="button" onClick={() => setPipeline(pipeline ? undefined : "upscaler")}>
        {pipeline ? "All pipelines" : "Only the upscaler"}
      </button>
      <ImagePicker
        ref={picker}
        apiBase="https://thumbs.example.com"
        headers={headers}
        filters={filters}
        multiple
        selected={selected}
        onSelectionChange={(urls) => setSelected(urls)}
        onConfirm={(_urls, images) => setChosen(images)}
        theme="auto"
        strings={strings}
      />
      <p>{chosen.length} chosen</p>
    </div>
  );
}
