/**
 * Counters for decisions, shaped for Prometheus and OpenTelemetry without depending on either:
 * feed `record` from `onDecision`, read `snapshot()` (for an OpenTelemetry observable counter)
 * or `prometheus()` (text exposition format 0.0.4, for a /metrics route).
 */
import type { DecisionEvent } from '../config/options.js';

/** Upper bounds (ms) of the decision-duration histogram. */
const BUCKETS_MS = [0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000];

export interface MetricsSnapshot {
  /** Decisions by `outcome`, `status`, `reason` (`''` when allowed) and `binding` (`''` when refused before the token was verified); see {@link DecisionEvent}. */
  decisions: { labels: { outcome: string; status: string; reason: string; binding: string }; count: number }[];
  /** Cumulative histogram of decision durations (ms), Prometheus style. */
  duration: { buckets: { le: number; count: number }[]; sum: number; count: number };
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export class DecisionMetrics {
  private readonly counts = new Map<string, number>();
  private readonly buckets = BUCKETS_MS.map(() => 0);
  private sum = 0;
  private count = 0;

  /** Records one decision; pass it as (or call it from) `onDecision`. */
  readonly record = (event: DecisionEvent): void => {
    const key = JSON.stringify([event.outcome, String(event.status), event.reason ?? '', event.binding ?? '']);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    BUCKETS_MS.forEach((le, i) => {
      if (event.durationMs <= le) this.buckets[i] = (this.buckets[i] as number) + 1;
    });
    this.sum += event.durationMs;
    this.count++;
  };

  snapshot(): MetricsSnapshot {
    return {
      decisions: [...this.counts].map(([key, count]) => {
        const [outcome, status, reason, binding] = JSON.parse(key) as string[];
        return {
          labels: { outcome: outcome as string, status: status as string, reason: reason as string, binding: binding as string },
          count,
        };
      }),
      duration: { buckets: BUCKETS_MS.map((le, i) => ({ le, count: this.buckets[i] as number })), sum: this.sum, count: this.count },
    };
  }

  /** Prometheus text exposition of the counters and the histogram. */
  prometheus(prefix = 'fapi_guard'): string {
    const s = this.snapshot();
    const lines = [`# HELP ${prefix}_decisions_total Access decisions.`, `# TYPE ${prefix}_decisions_total counter`];
    for (const { labels, count } of s.decisions) {
      const l = Object.entries(labels)
        .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
        .join(',');
      lines.push(`${prefix}_decisions_total{${l}} ${count}`);
    }
    lines.push(`# HELP ${prefix}_decision_duration_ms Time to decide.`, `# TYPE ${prefix}_decision_duration_ms histogram`);
    for (const { le, count } of s.duration.buckets) lines.push(`${prefix}_decision_duration_ms_bucket{le="${le}"} ${count}`);
    lines.push(`${prefix}_decision_duration_ms_bucket{le="+Inf"} ${s.duration.count}`);
    lines.push(`${prefix}_decision_duration_ms_sum ${s.duration.sum}`, `${prefix}_decision_duration_ms_count ${s.duration.count}`);
    return `${lines.join('\n')}\n`;
  }
}
