import type { PickerStrings } from "./labels";

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

/**
 * Thin bar over the grid when some pages failed after their retries, or some tiles on screen say
 * "Preview unavailable" (`previews`); its Retry asks for both again at once.
 */
export function FailedPagesBar(props: {
  count: number;
  previews?: number;
  offline: boolean;
  onRetry: () => void;
  strings: PickerStrings;
}) {
  const { count, previews = 0, offline, onRetry, strings } = props;
  return (
    <div className="tp-bar" role="alert">
      <span>{count > 0 ? strings.failedPages(count, offline) : strings.failedPreviews(previews)}</span>
      <button type="button" className="tp-button" onClick={onRetry}>
        {strings.retry}
      </button>
    </div>
  );
}

/**
 * Images created since the picker opened. The live region is always in the DOM (screen readers only
 * announce changes to a region they already know); the button adds them at the top.
 */
export function NewImagesNotice(props: { count: number; capped: boolean; onShow: () => void; strings: PickerStrings }) {
  const { count, capped, onShow, strings } = props;
  return (
    <div className="tp-new" data-empty={count === 0 || undefined}>
      <span role="status" aria-live="polite" className="tp-new-text">
        {count > 0 ? strings.newImages(count, capped) : ""}
      </span>
      {count > 0 && (
        <button type="button" className="tp-button" onClick={onShow}>
          {strings.showNewImages(count, capped)}
        </button>
      )}
    </div>
  );
}
