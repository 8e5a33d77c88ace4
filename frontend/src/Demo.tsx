import { useCallback, useState } from "react";
import { ImagePicker, type LibraryImage } from "./picker";

/** Demo options from the query string, so tests and people can try variants without a rebuild. */
function readOptions() {
  const q = new URLSearchParams(window.location.search);
  const pageSize = Number(q.get("pageSize"));
  return {
    apiBase: q.get("api") ?? "",
    pageSize: Number.isInteger(pageSize) && pageSize > 0 ? pageSize : 50,
    multiple: q.get("multiple") === "1",
    theme: (["light", "dark", "auto"] as const).find((t) => t === q.get("theme")) ?? "light",
  };
}

/** The page a Playground user opens to pick a source image: the picker plus what was chosen. */
export function Demo() {
  const [options] = useState(readOptions);
  const [open, setOpen] = useState(true);
  const [chosen, setChosen] = useState<LibraryImage[]>([]);

  const onSelectionChange = useCallback((_urls: string[], images: LibraryImage[]) => setChosen(images), []);
  const last = chosen[chosen.length - 1];

  return (
    <div className="demo">
      <header className="demo-header">
        <h1>Choose a source image</h1>
        <button type="button" className="demo-toggle" onClick={() => setOpen((o) => !o)} aria-expanded={open}>
          {open ? "Close library" : "Open library"}
        </button>
      </header>
      <main className="demo-main">
        <section className="demo-picker" aria-label="Library">
          {open ? (
            <ImagePicker
              apiBase={options.apiBase}
              pageSize={options.pageSize}
              multiple={options.multiple}
              theme={options.theme}
              onSelectionChange={onSelectionChange}
            />
          ) : (
            <p className="demo-closed">The library is closed.</p>
          )}
        </section>
        <aside className="demo-aside" aria-label="Selection">
          <h2>{options.multiple ? `Selected (${chosen.length})` : "Selected"}</h2>
          <output className="demo-url" data-testid="selected-url">
            {last ? last.url : "Nothing selected yet."}
          </output>
          {options.multiple && chosen.length > 1 && (
            <ul className="demo-list" data-testid="selected-list">
              {chosen.map((img) => (
                <li key={img.id}>{img.url}</li>
              ))}
            </ul>
          )}
          {last && (
            <img
              key={last.url} // a new element per choice: never shows the previous image while this one loads
              className="demo-preview"
              data-testid="preview"
              src={last.url}
              alt={`Preview of image ${last.id}`}
              width={last.width ?? undefined}
              height={last.height ?? undefined}
            />
          )}
        </aside>
      </main>
    </div>
  );
}
