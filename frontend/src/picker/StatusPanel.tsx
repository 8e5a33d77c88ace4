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
export function FailedPagesBar({ count, onRetry }: { count: number; onRetry: () => void }) {
  return (
    <div className="tp-bar" role="alert">
      <span>
        Some images could not be loaded ({count} {count === 1 ? "page" : "pages"}).
      </span>
      <button type="button" className="tp-button" onClick={onRetry}>
        Retry
      </button>
    </div>
  );
}
