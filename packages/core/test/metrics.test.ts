import { DecisionMetrics } from '@fapi-guard/core';

describe('decision metrics', () => {
  it('counts decisions by outcome, status, reason and binding, with a duration histogram', () => {
    const m = new DecisionMetrics();
    const base = { method: 'GET', url: 'https://rs.example.com/accounts' };
    m.record({ ...base, outcome: 'allow', status: 200, binding: 'dpop', durationMs: 0.4 });
    m.record({ ...base, outcome: 'allow', status: 200, binding: 'dpop', durationMs: 3 });
    m.record({ ...base, outcome: 'deny', status: 401, reason: 'dpop_proof_replayed', durationMs: 30 });
    const s = m.snapshot();
    expect(s.decisions).toEqual([
      { labels: { outcome: 'allow', status: '200', reason: '', binding: 'dpop' }, count: 2 },
      { labels: { outcome: 'deny', status: '401', reason: 'dpop_proof_replayed', binding: '' }, count: 1 },
    ]);
    expect(s.duration.count).toBe(3);
    expect(s.duration.buckets.find((b) => b.le === 0.5)?.count).toBe(1);
    expect(s.duration.buckets.find((b) => b.le === 50)?.count).toBe(3);
    const text = m.prometheus();
    expect(text).toContain('fapi_guard_decisions_total{outcome="deny",status="401",reason="dpop_proof_replayed",binding=""} 1');
    expect(text).toContain('fapi_guard_decision_duration_ms_bucket{le="+Inf"} 3');
  });
});
