// The knobs of the tencent-live-exporter mixin. Override them as any mixin's:
//
//   (import 'mixin.libsonnet') + { _config+:: { exporterSelector: 'job="tle"', runwayWarningDays: 10 } }
//
// Every billing window, threshold, `for`, `keep_firing_for` and subquery step is written for a real
// day and scaled by daySeconds / 86400, so one definition serves real use (86400) and the demo's
// compressed day (`--demo.day`, 120 s by default). The exporter-health alerts follow the poll and
// scrape intervals, which a compressed day does not change.
{
  _config+:: {
    // Length of one billing day in seconds (Tencent issues one bill a day).
    daySeconds: 86400,

    // Label selector of the exporter's series (the scrape job), in every rule.
    exporterSelector: 'job="tencent-live"',
    // Optional label (e.g. 'cluster') kept by every aggregation, for several Prometheus servers
    // feeding one Thanos or Mimir; '' for none.
    clusterLabel: '',

    // Pool alerts, in days of daySeconds.
    runwayWarningDays: 7,  // TencentLiveRunwayLow
    runwayCriticalDays: 2,  // TencentLiveRunwayCritical
    expiringUnusedHorizonDays: 14,  // TencentLiveQuotaExpiringUnused: packages expiring within
    // ... and only when more than this share of the package's left is at risk: bill hours vary
    // by hours, so a 7-day rate is not exact, and a package that is only just used up in time
    // should not warn.
    expiringUnusedMinFraction: 0.01,

    // Pool alerts' `for` and `keep_firing_for`, in seconds of a real day (scaled).
    runwayLowFor: 15 * 60,
    runwayCriticalFor: 5 * 60,
    payAsYouGoFor: 5 * 60,
    expiringUnusedFor: 60 * 60,
    quotaFrozenFor: 60 * 60,
    // Holds a firing pool alert through a gap in the data, e.g. an exporter replaced by a new
    // instance that misses two scrapes.
    poolKeepFiringFor: 15 * 60,
    // Step of the subquery that finds how long a pair has had data (its history), in seconds
    // of a real day (scaled).
    historyStep: 60 * 60,
    // The quota at risk is read as of the last bill: the least estimate over this window, in
    // seconds of a real day (scaled).
    atRiskSmoothing: 36 * 60 * 60,
    // The quota at risk needs this much history (in seconds of a real day, scaled), unless
    // the pair's use over at least a day is 0: with fewer bills the rate is too uncertain to
    // say a package expires unused.
    atRiskMinHistory: 3 * 86400,

    // The exporter's poll interval (--poll.interval) in seconds: a pair is stale after 3 polls.
    pollIntervalSeconds: 300,
    stalenessPolls: 3,

    // Replicas (README "Scaling"): targets of one job (and cluster) that poll the same accounts.
    // A target down pages (TencentLiveExporterDown) only while a pair it served in the last
    // servedPairsLookback seconds is served by no target that is up, or, when it served none
    // in that window, while no target of its job is up; otherwise it is a warning
    // (TencentLiveExporterReplicaDown). Not scaled by daySeconds.
    servedPairsLookback: 60 * 60,

    // `runbook_url` of each alert: %s is the alert name in lower case.
    runbookURLPattern: 'https://github.com/tencent-live-exporter/tencent-live-exporter#runbook-%s',
  },
}
