export interface StatusPanelProps {
  kind: "empty" | "error";
  title: string;
  detail?: string;
  actionLabel: string;
  onAction: () => void;
}

/** Full-size message for an empty library or a library that could not be loaded, with a retry. */
export function StatusPanel({ kind, title, detail, actionLabel, onAction }: StatusPanelProps) {
  return (
    <div className={`tp-status tp-status-${kind}`} role={kind === "error" ? "alert" : "status"}>
      <p className="tp-status-title">{title}</p>
      {detail && <p className="tp-status-detail">{detail}</p>}
      <button type="button" className="tp-button" onClick={onAction}>
        {actionLabel}
      </button>
    </div>
  );
}

/** Thin bar over the grid when some pages failed after their retries. */
export function FailedPagesBar({ count, offline, onRetry }: { count: number; offline: boolean; onRetry: () => void }) {
  return (
    <div className="tp-bar" role="alert">
      <span>
        {offline
          ? "You're offline: some images could not be loaded. They will load when you're back online."
          : `Some images could not be loaded (${count} ${count === 1 ? "page" : "pages"}).`}
      </span>
      <button type="button" className="tp-button" onClick={onRetry}>
        Retry
      </button>
    </div>
  );
}

/**
 * Images created since the picker opened. The live region is always in the DOM (screen readers only
 * announce changes to a region they already know); the button adds them at the top.
 */
export function NewImagesNotice({ count, onShow }: { count: number; onShow: () => void }) {
  const text = count === 1 ? "1 new image" : `${count} new images`;
  return (
    <div className="tp-new" data-empty={count === 0 || undefined}>
      <span role="status" aria-live="polite" className="tp-new-text">
        {count > 0 ? text : ""}
      </span>
      {count > 0 && (
        <button type="button" className="tp-button" onClick={onShow}>
          Show {text}
        </button>
      )}
    </div>
  );
}
