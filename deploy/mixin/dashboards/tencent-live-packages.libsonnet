// The "Tencent Live packages" dashboard: a function of the mixin's _config (see
// ../dashboards.libsonnet for the fields it reads). Plain JSON in jsonnet, no library.
//
// Every query is filtered by the datasource, job and (with clusterLabel) cluster variables: the
// exporter's series by their job label; the recording rules, which aggregate the job away (a
// package scraped by two replicas counts once), by the accounts that the selected jobs poll.
// Amounts a person reads are in Tencent's units: traffic in decimal bytes (decbytes: 1 TB =
// 1000 GB), transcode and top speed codec in minutes, co-anchoring in hours.
function(c)
  local day = c.daySeconds;
  local cl = c.clusterLabel;
  local hasCluster = cl != '';

  // Seconds as a Grafana / Prometheus duration: 1d, 2h, 120s -> 2m.
  local duration(s) =
    local units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
    local fit = [u for u in units if s % u[1] == 0][0];
    '%d%s' % [s / fit[1], fit[0]];

  // Label lists with the optional cluster label first.
  local by(names) = std.join(', ', (if hasCluster then [cl] else []) + names);
  local pair = by(['account', 'package_type']);
  local pkg = by(['account', 'package_type', 'package_id']);
  local pkgStatus = by(['account', 'package_type', 'package_id', 'status']);

  // Matchers of the exporter's series: cluster (optional) and job.
  local clusterMatcher = if hasCluster then '%s=~"$cluster", ' % cl else '';
  local sel = clusterMatcher + 'job=~"$job"';
  local selected = 'account=~"$account", package_type=~"$package_type"';
  // An exporter package series of the selected jobs, accounts and types.
  local series(metric, extra='') = '%s{%s, %s%s}' % [metric, sel, selected, extra];
  // The accounts polled by the selected jobs (tencent_live_up has one series per account and
  // query type).
  local polled = 'on (%s) tencent_live_up{%s}' % [by(['account']), sel];
  // A recording rule's series of the selected accounts and types, kept for the accounts the
  // selected jobs poll.
  local record(name, extra='') = '(%s{%s%s%s} and %s)' % [name, clusterMatcher, selected, extra, polled];

  // Transcode and top speed codec amounts in minutes, co-anchoring in hours: q(extra matcher)
  // is the expression in seconds.
  local notHours = ', package_type!="co_anchoring"';
  local hours = ', package_type="co_anchoring"';
  local minutesOrHours(q) = '%s / 60 or %s / 3600' % [q(notHours), q(hours)];
  local durationOverrides = [
    { matcher: { id: 'byFrameRefID', options: 'B' }, properties: [{ id: 'unit', value: 'suffix: min' }, { id: 'decimals', value: 0 }] },
    { matcher: { id: 'byRegexp', options: '.*co_anchoring.*' }, properties: [{ id: 'unit', value: 'suffix: h' }, { id: 'decimals', value: 1 }] },
  ];
  local unitsNote = 'Traffic in decimal units (1 TB = 1000 GB, as Tencent counts), transcode and top speed codec in minutes, co-anchoring in hours.';

  local datasource = { type: 'prometheus', uid: '${datasource}' };
  local target(refId, expr, legend='', instant=false, format=null) = {
    datasource: datasource,
    refId: refId,
    expr: expr,
    editorMode: 'code',
    range: !instant,
    instant: instant,
  } + (if legend != '' then { legendFormat: legend } else {})
    + (if format != null then { format: format } else {});
  local runbooks(alerts) = [
    { title: 'Runbook: ' + a, url: c.runbookURLPattern % std.asciiLower(a), targetBlank: true }
    for a in alerts
  ];
  local thresholds(steps) = {
    mode: 'absolute',
    steps: [{ color: steps[0], value: null }] + [{ color: s[1], value: s[0] } for s in steps[1:]],
  };
  local reduce = { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false } };
  local legendTable = {
    legend: { displayMode: 'table', placement: 'bottom', showLegend: true, calcs: ['lastNotNull'] },
    tooltip: { mode: 'multi', sort: 'desc' },
  };
  local lines = { drawStyle: 'line', lineWidth: 1, fillOpacity: 10, showPoints: 'never', spanNulls: false };

  local panel(id, type, title, description, pos, targets, links=[]) = {
    type: type,
    title: title,
    id: id,
    datasource: datasource,
    description: description,
    gridPos: { x: pos[0], y: pos[1], w: pos[2], h: pos[3] },
    targets: targets,
  } + (if links != [] then { links: runbooks(links) } else {});
  local row(id, title, y) = {
    type: 'row',
    title: title,
    id: id,
    collapsed: false,
    gridPos: { h: 1, w: 24, x: 0, y: y },
    panels: [],
  };
  local bargauge(id, title, description, pos, targets, defaults, overrides=[], links=[]) =
    panel(id, 'bargauge', title, description, pos, targets, links) + {
      fieldConfig: { defaults: defaults, overrides: overrides },
      options: reduce {
        orientation: 'horizontal',
        displayMode: 'gradient',
        showUnfilled: true,
        minVizHeight: 10,
        minVizWidth: 0,
        valueMode: 'color',
        namePlacement: 'auto',
        sizing: 'auto',
      },
    };
  local timeseries(id, title, description, pos, targets, defaults, overrides=[], links=[]) =
    panel(id, 'timeseries', title, description, pos, targets, links) + {
      fieldConfig: { defaults: { min: 0, custom: lines } + defaults, overrides: overrides },
      options: legendTable,
    };
  // Deductions per pair and interval: the per-package Used (merged over status and replicas by
  // the recording rule) never decreases, so max - min over the interval is what the bills took.
  local deducted(unit, extra) =
    'sum by (%(pair)s) ((max_over_time(package:tencent_live_used_%(u)s:max{%(f)s}[$__interval]) - min_over_time(package:tencent_live_used_%(u)s:max{%(f)s}[$__interval])) and %(polled)s)' % {
      pair: pair,
      u: unit,
      f: clusterMatcher + selected + extra,
      polled: polled,
    };
  local bars(id, title, description, pos, targets, defaults, overrides=[]) =
    timeseries(id, title, description, pos, targets, defaults {
      custom: lines {
        drawStyle: 'bars',
        barAlignment: -1,
        fillOpacity: 80,
        lineWidth: 1,
        stacking: { mode: 'normal', group: 'A' },
      },
    }, overrides) + { interval: duration(day) };

  local tableColumns = (if hasCluster then [cl] else []) + [
    'account', 'package_type', 'package_id', 'status',
    'Value #A', 'Value #E', 'Value #B', 'Value #C', 'Value #D', 'Value #G', 'Value #F',
  ];
  local pairLegend = '{{account}} {{package_type}}';
  local pkgLegend = '{{account}} {{package_type}} {{package_id}}';
  local amountByPair(metric) = [
    target('A', 'max by (%s) (%s)' % [pair, record(metric % 'bytes')], pairLegend, true),
    target('B', minutesOrHours(function(m) 'max by (%s) (%s)' % [pair, record(metric % 'seconds', m)]), pairLegend, true),
  ];

  local panels = [
    row(22, 'Pools: when does pay-as-you-go start?', 0),
    bargauge(
      23,
      'Runway per pool (at the 7-day average rate)',
      'What the usable packages of each (account, package type) can still give before they expire, divided by the average rate of the last 7 days: how long until usage is billed pay-as-you-go. Red under %d days (TencentLiveRunwayCritical), orange under %d days (TencentLiveRunwayLow). A pool that nobody uses, or that is empty, has no runway and is not shown. Recording rule account_package_type:tencent_live_runway_seconds:rate7d.' % [c.runwayCriticalDays, c.runwayWarningDays],
      [0, 1, 12, 8],
      [target('A', 'min by (%s) (%s)' % [pair, record('account_package_type:tencent_live_runway_seconds:rate7d')], pairLegend, true)],
      {
        unit: 'dtdurations',
        min: 0,
        max: 30 * day,
        color: { mode: 'thresholds' },
        thresholds: thresholds(['red', [c.runwayCriticalDays * day, 'orange'], [c.runwayWarningDays * day, 'green']]),
      },
      links=['TencentLiveRunwayLow', 'TencentLiveRunwayCritical'],
    ),
    bargauge(
      24,
      'Usable remaining per pool',
      'Left of the packages of each (account, package type) that are unused or in use, have quota left and have not expired. 0 means the pool is empty and usage is billed pay-as-you-go (TencentLivePayAsYouGo). %s Recording rules account_package_type:tencent_live_usable_remaining_{bytes,seconds}:sum.' % unitsNote,
      [12, 1, 12, 8],
      amountByPair('account_package_type:tencent_live_usable_remaining_%s:sum'),
      { unit: 'decbytes', decimals: 2, min: 0, color: { mode: 'thresholds' }, thresholds: thresholds(['red', [1, 'green']]) },
      durationOverrides,
      links=['TencentLivePayAsYouGo'],
    ),
    bars(
      25,
      'Daily deductions: traffic',
      'What the daily bills took from the packages of each (account, package type), one bar a day (of the dashboard time zone; Tencent bills per Beijing day, so a bar holds one daily bill). Tencent deducts a day of usage the next day, at once, in the order the packages expire. Decimal units (1 TB = 1000 GB). From package:tencent_live_used_bytes:max (max - min over each day).',
      [0, 9, 12, 8],
      [target('A', deducted('bytes', ''), pairLegend)],
      { unit: 'decbytes' },
    ),
    bars(
      27,
      'Daily deductions: transcode, top speed codec (minutes), co-anchoring (hours)',
      'What the daily bills took from the duration packages of each (account, package type), one bar a day (of the dashboard time zone). Transcode and top speed codec in minutes, co-anchoring in hours. From package:tencent_live_used_seconds:max (max - min over each day).',
      [12, 9, 12, 8],
      [target('B', minutesOrHours(function(m) deducted('seconds', m)), pairLegend)],
      {},
      durationOverrides + [
        { matcher: { id: 'byRegexp', options: '.*co_anchoring.*' }, properties: [{ id: 'custom.stacking', value: { mode: 'normal', group: 'hours' } }] },
      ],
    ),
    timeseries(
      28,
      'Average use per day (last 7 days)',
      "Each pool's rate of use, averaged over the daily bills of the last 7 days (less while Prometheus has less history), as an amount per day: the rate the runway and the quota at risk are computed with. %s Recording rules account_package_type:tencent_live_used_{bytes,seconds}:rate7d." % unitsNote,
      [0, 17, 12, 8],
      [
        target('A', 'max by (%s) (%s) * %d' % [pair, record('account_package_type:tencent_live_used_bytes:rate7d'), day], pairLegend),
        target('B', minutesOrHours(function(m) '(max by (%s) (%s) * %d)' % [pair, record('account_package_type:tencent_live_used_seconds:rate7d', m), day]), pairLegend),
      ],
      { unit: 'decbytes' },
      durationOverrides,
    ),
    bargauge(
      26,
      'Quota at risk of expiring unused (per package)',
      'Of each usable package, what expires before Tencent reaches it at the 7-day average rate, in deduction order (earliest expiry first): max(0, left - max(0, rate x time to expiry - usable ahead of it)). TencentLiveQuotaExpiringUnused warns when a package expiring within %d days has quota at risk. %s Recording rules package:tencent_live_quota_at_risk_{bytes,seconds}:rate7d.' % [c.expiringUnusedHorizonDays, unitsNote],
      [12, 17, 12, 8],
      [
        target('A', 'max by (%s) (%s)' % [pkg, record('package:tencent_live_quota_at_risk_bytes:rate7d')], pkgLegend, true),
        target('B', minutesOrHours(function(m) 'max by (%s) (%s)' % [pkg, record('package:tencent_live_quota_at_risk_seconds:rate7d', m)]), pkgLegend, true),
      ],
      { unit: 'decbytes', decimals: 2, min: 0, color: { mode: 'thresholds' }, thresholds: thresholds(['green', [1, 'orange']]) },
      durationOverrides,
      links=['TencentLiveQuotaExpiringUnused'],
    ),
    bargauge(
      29,
      'Quota at risk of expiring unused (per pool)',
      'The quota at risk of the packages of each (account, package type), summed. %s Recording rules account_package_type:tencent_live_quota_at_risk_{bytes,seconds}:sum.' % unitsNote,
      [0, 25, 8, 8],
      amountByPair('account_package_type:tencent_live_quota_at_risk_%s:sum'),
      { unit: 'decbytes', decimals: 2, min: 0, color: { mode: 'thresholds' }, thresholds: thresholds(['green', [1, 'orange']]) },
      durationOverrides,
      links=['TencentLiveQuotaExpiringUnused'],
    ),
    bargauge(
      30,
      'Frozen quota per pool',
      'Left of the frozen packages (Status 3) of each (account, package type): Tencent freezes packages on monthly settlement and their validity keeps running, so frozen quota can expire unused (TencentLiveQuotaFrozen). Pools without frozen quota are not shown; the Packages table lists the frozen packages with the Status variable. %s Recording rules account_package_type:tencent_live_frozen_remaining_{bytes,seconds}:sum.' % unitsNote,
      [8, 25, 8, 8],
      amountByPair('account_package_type:tencent_live_frozen_remaining_%s:sum'),
      { unit: 'decbytes', decimals: 2, min: 0, color: { mode: 'fixed', fixedColor: 'blue' } },
      durationOverrides,
      links=['TencentLiveQuotaFrozen'],
    ),
    bargauge(
      31,
      'Time to expiry of frozen packages',
      'Time until ExpireTime of every frozen package with quota left: its validity keeps running while it is frozen.',
      [16, 25, 8, 8],
      [target('A', 'max by (%s) (%s - time()) and on (%s) (max by (%s) (%s > 0 or %s > 0))' % [
        pkg,
        series('tencent_live_package_expiry_timestamp_seconds', ', status="frozen"'),
        pkg,
        pkg,
        series('tencent_live_package_remaining_bytes', ', status="frozen"'),
        series('tencent_live_package_remaining_seconds', ', status="frozen"'),
      ], pkgLegend, true)],
      {
        unit: 'dtdurations',
        min: 0,
        color: { mode: 'thresholds' },
        thresholds: thresholds(['red', [3 * day, 'orange'], [c.expiringUnusedHorizonDays * day, 'yellow'], [30 * day, 'green']]),
      },
      links=['TencentLiveQuotaFrozen'],
    ),

    row(12, 'Packages', 33),
    panel(
      13,
      'table',
      'Packages',
      'Every package of the selected accounts, types and statuses (by default the usable ones: unused and in use), soonest expiry first. Remaining ratio is Left / Total. %s' % unitsNote,
      [0, 34, 24, 12],
      [
        target('A', 'max by (%s) ((%s - time()) / %d)' % [pkgStatus, series('tencent_live_package_expiry_timestamp_seconds', ', status=~"$status"'), day], instant=true, format='table'),
        target('B', 'max by (%s) (%s / (%s > 0) or %s / (%s > 0))' % [
          pkgStatus,
          series('tencent_live_package_remaining_bytes', ', status=~"$status"'),
          series('tencent_live_package_quota_bytes', ', status=~"$status"'),
          series('tencent_live_package_remaining_seconds', ', status=~"$status"'),
          series('tencent_live_package_quota_seconds', ', status=~"$status"'),
        ], instant=true, format='table'),
        target('C', 'max by (%s) (%s)' % [pkgStatus, series('tencent_live_package_remaining_bytes', ', status=~"$status"')], instant=true, format='table'),
        target('D', 'max by (%s) (%s) / 60' % [pkgStatus, series('tencent_live_package_remaining_seconds', ', status=~"$status"' + notHours)], instant=true, format='table'),
        target('G', 'max by (%s) (%s) / 3600' % [pkgStatus, series('tencent_live_package_remaining_seconds', ', status=~"$status"' + hours)], instant=true, format='table'),
        target('E', 'max by (%s) (%s * 1000)' % [pkgStatus, series('tencent_live_package_expiry_timestamp_seconds', ', status=~"$status"')], instant=true, format='table'),
        target('F', 'max by (%s) (%s)' % [pkgStatus, series('tencent_live_package_auto_renew', ', status=~"$status"')], instant=true, format='table'),
      ],
    ) + {
      fieldConfig: {
        defaults: { custom: { align: 'auto', cellOptions: { type: 'auto' }, filterable: true } },
        overrides: [
          {
            matcher: { id: 'byName', options: 'Days to expiry' },
            properties: [
              { id: 'unit', value: 'none' },
              { id: 'decimals', value: 1 },
              { id: 'custom.cellOptions', value: { type: 'color-text' } },
              { id: 'color', value: { mode: 'thresholds' } },
              { id: 'thresholds', value: thresholds(['red', [3, 'orange'], [c.expiringUnusedHorizonDays, 'yellow'], [30, 'green']]) },
            ],
          },
          {
            matcher: { id: 'byName', options: 'Remaining ratio' },
            properties: [
              { id: 'unit', value: 'percentunit' },
              { id: 'min', value: 0 },
              { id: 'max', value: 1 },
              { id: 'decimals', value: 1 },
              { id: 'custom.cellOptions', value: { type: 'gauge', mode: 'basic', valueDisplayMode: 'text' } },
              { id: 'color', value: { mode: 'thresholds' } },
              { id: 'thresholds', value: thresholds(['red', [0.05, 'orange'], [0.1, 'yellow'], [0.25, 'green']]) },
            ],
          },
          { matcher: { id: 'byName', options: 'Remaining traffic' }, properties: [{ id: 'unit', value: 'decbytes' }, { id: 'decimals', value: 2 }] },
          { matcher: { id: 'byName', options: 'Remaining minutes' }, properties: [{ id: 'unit', value: 'suffix: min' }, { id: 'decimals', value: 0 }] },
          { matcher: { id: 'byName', options: 'Remaining hours' }, properties: [{ id: 'unit', value: 'suffix: h' }, { id: 'decimals', value: 1 }] },
          { matcher: { id: 'byName', options: 'Expires' }, properties: [{ id: 'unit', value: 'dateTimeAsIso' }] },
          {
            matcher: { id: 'byName', options: 'Auto renew' },
            properties: [{ id: 'mappings', value: [{ type: 'value', options: { '0': { text: 'no', index: 0 }, '1': { text: 'yes', index: 1 } } }] }],
          },
        ],
      },
      options: {
        showHeader: true,
        cellHeight: 'sm',
        footer: { show: false, reducer: ['sum'], fields: '' },
        sortBy: [{ displayName: 'Days to expiry', desc: false }],
      },
      transformations: [
        { id: 'merge', options: {} },
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true, job: true, instance: true },
            indexByName: { [tableColumns[i]]: i for i in std.range(0, std.length(tableColumns) - 1) },
            renameByName: (if hasCluster then { [cl]: 'Cluster' } else {}) + {
              account: 'Account',
              package_type: 'Type',
              package_id: 'Package',
              status: 'Status',
              'Value #A': 'Days to expiry',
              'Value #B': 'Remaining ratio',
              'Value #C': 'Remaining traffic',
              'Value #D': 'Remaining minutes',
              'Value #G': 'Remaining hours',
              'Value #E': 'Expires',
              'Value #F': 'Auto renew',
            },
          },
        },
        { id: 'sortBy', options: { fields: {}, sort: [{ field: 'Days to expiry', desc: false }] } },
      ],
    },

    row(1, 'Remaining quota', 46),
    panel(
      2,
      'stat',
      'Traffic left (usable packages)',
      'Left of the unused and in-use traffic packages, summed per account, in decimal units (1 TB = 1000 GB, as Tencent counts).',
      [0, 47, 8, 5],
      [target('A', 'sum by (%s) (max by (%s) (%s))' % [by(['account']), pkgStatus, series('tencent_live_package_remaining_bytes', ', status=~"unused|in_use"')], '{{account}}')],
    ) + {
      fieldConfig: {
        defaults: { unit: 'decbytes', decimals: 2, color: { mode: 'thresholds' }, thresholds: thresholds(['red', [1, 'green']]) },
        overrides: [],
      },
      options: reduce { colorMode: 'value', graphMode: 'area', justifyMode: 'auto', orientation: 'auto', textMode: 'value_and_name' },
    },
    panel(
      3,
      'stat',
      'Duration left per type (usable packages)',
      'Left of the unused and in-use transcode and top speed codec packages (minutes) and co-anchoring packages (hours), summed per account and package type.',
      [8, 47, 16, 5],
      [target('B', minutesOrHours(function(m) 'sum by (%s) (max by (%s) (%s))' % [pair, pkgStatus, series('tencent_live_package_remaining_seconds', ', status=~"unused|in_use"' + m)]), pairLegend)],
    ) + {
      fieldConfig: {
        defaults: { color: { mode: 'thresholds' }, thresholds: thresholds(['red', [1, 'green']]) },
        overrides: durationOverrides,
      },
      options: reduce { colorMode: 'value', graphMode: 'area', justifyMode: 'auto', orientation: 'auto', textMode: 'value_and_name' },
    },
    bargauge(
      4,
      'Remaining ratio of in-use packages',
      'Left / Total of every in-use package (packages with a zero quota are left out).',
      [0, 52, 12, 8],
      [target('A', 'max by (%s) (%s / (%s > 0) or %s / (%s > 0))' % [
        pkgStatus,
        series('tencent_live_package_remaining_bytes', ', status="in_use"'),
        series('tencent_live_package_quota_bytes', ', status="in_use"'),
        series('tencent_live_package_remaining_seconds', ', status="in_use"'),
        series('tencent_live_package_quota_seconds', ', status="in_use"'),
      ], pkgLegend, true)],
      { unit: 'percentunit', min: 0, max: 1, decimals: 1, color: { mode: 'thresholds' }, thresholds: thresholds(['red', [0.05, 'orange'], [0.1, 'yellow'], [0.25, 'green']]) },
    ),
    bargauge(
      5,
      'Time to expiry of usable packages',
      'Time until ExpireTime of every unused or in-use package that has not expired yet. Quota left in a package that expires is lost.',
      [12, 52, 12, 8],
      [target('A', 'max by (%s) (%s - time()) > 0' % [pkgStatus, series('tencent_live_package_expiry_timestamp_seconds', ', status=~"unused|in_use"')], pkgLegend, true)],
      {
        unit: 'dtdurations',
        min: 0,
        color: { mode: 'thresholds' },
        thresholds: thresholds(['red', [3 * day, 'orange'], [c.expiringUnusedHorizonDays * day, 'yellow'], [30 * day, 'green']]),
      },
    ),

    row(6, 'Usage over time', 60),
    timeseries(
      7,
      'Traffic used vs quota',
      'Used and Total of unused and in-use traffic packages, summed per account, in decimal units. Used moves once a day, when the daily bill is deducted.',
      [0, 61, 12, 8],
      [
        target('A', 'sum by (%s) (max by (%s) (%s))' % [by(['account']), pkgStatus, series('tencent_live_package_used_bytes', ', status=~"unused|in_use"')], '{{account}} used'),
        target('C', 'sum by (%s) (max by (%s) (%s))' % [by(['account']), pkgStatus, series('tencent_live_package_quota_bytes', ', status=~"unused|in_use"')], '{{account}} quota'),
      ],
      { unit: 'decbytes' },
      [{ matcher: { id: 'byFrameRefID', options: 'C' }, properties: [{ id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } }, { id: 'custom.fillOpacity', value: 0 }] }],
    ),
    timeseries(
      8,
      'Duration used vs quota',
      'Used and Total of unused and in-use transcode and top speed codec packages (minutes) and co-anchoring packages (hours), summed per account and package type.',
      [12, 61, 12, 8],
      [
        target('B', minutesOrHours(function(m) 'sum by (%s) (max by (%s) (%s))' % [pair, pkgStatus, series('tencent_live_package_used_seconds', ', status=~"unused|in_use"' + m)]), '{{account}} {{package_type}} used'),
        target('C', minutesOrHours(function(m) 'sum by (%s) (max by (%s) (%s))' % [pair, pkgStatus, series('tencent_live_package_quota_seconds', ', status=~"unused|in_use"' + m)]), '{{account}} {{package_type}} quota'),
      ],
      {},
      [
        { matcher: { id: 'byFrameRefID', options: 'B' }, properties: [{ id: 'unit', value: 'suffix: min' }, { id: 'decimals', value: 0 }] },
        { matcher: { id: 'byFrameRefID', options: 'C' }, properties: [{ id: 'unit', value: 'suffix: min' }, { id: 'decimals', value: 0 }, { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } }, { id: 'custom.fillOpacity', value: 0 }] },
        durationOverrides[1],
      ],
    ),

    row(14, 'Exporter health', 69),
    panel(
      15,
      'state-timeline',
      'Polls up',
      'tencent_live_up per account and query type: whether the latest poll succeeded.',
      [0, 70, 12, 6],
      [target('A', 'tencent_live_up{%s, account=~"$account"}' % sel, '{{account}} {{package_type}}')],
      links=['TencentLivePollFailing', 'TencentLiveExporterDown', 'TencentLiveExporterReplicaDown', 'TencentLiveExporterAbsent'],
    ) + {
      fieldConfig: {
        defaults: {
          min: 0,
          max: 1,
          color: { mode: 'thresholds' },
          thresholds: thresholds(['red', [1, 'green']]),
          mappings: [{ type: 'value', options: { '0': { text: 'DOWN', color: 'red', index: 0 }, '1': { text: 'UP', color: 'green', index: 1 } } }],
          custom: { fillOpacity: 70, lineWidth: 0 },
        },
        overrides: [],
      },
      options: {
        showValue: 'auto',
        mergeValues: true,
        alignValue: 'left',
        rowHeight: 0.9,
        legend: { displayMode: 'list', placement: 'bottom', showLegend: false },
        tooltip: { mode: 'single' },
      },
    },
    timeseries(
      16,
      'Time since last successful poll',
      'Age of the last successful poll per account and query type. TencentLiveDataStale above %ds (%d polls at a %ds interval).' % [c.stalenessPolls * c.pollIntervalSeconds, c.stalenessPolls, c.pollIntervalSeconds],
      [12, 70, 12, 6],
      [target('A', 'time() - tencent_live_exporter_last_success_timestamp_seconds{%s, account=~"$account"}' % sel, '{{account}} {{package_type}}')],
      {
        unit: 's',
        custom: lines { thresholdsStyle: { mode: 'dashed' } },
        color: { mode: 'palette-classic' },
        thresholds: thresholds(['green', [c.stalenessPolls * c.pollIntervalSeconds, 'red']]),
      },
      links=['TencentLiveDataStale', 'TencentLiveReplicaDataStale'],
    ),
    timeseries(
      17,
      'Poll duration',
      'Duration of the latest poll (all pages) per account and query type.',
      [0, 76, 8, 7],
      [target('A', 'tencent_live_exporter_poll_duration_seconds{%s, account=~"$account"}' % sel, '{{account}} {{package_type}}')],
      { unit: 's' },
    ),
    timeseries(
      18,
      'API requests and errors',
      "Tencent Cloud API calls per second (retries included) and failed calls per second by error code. TencentLiveApiErrorsHigh when one code is more than 10 % of an account's calls over 30m.",
      [8, 76, 8, 7],
      [
        target('A', 'sum by (%s) (rate(tencent_live_exporter_api_requests_total{%s, account=~"$account"}[$__rate_interval]))' % [by(['account']), sel], '{{account}} requests'),
        target('B', 'sum by (%s) (rate(tencent_live_exporter_api_request_errors_total{%s, account=~"$account"}[$__rate_interval]))' % [by(['account', 'code']), sel], '{{account}} errors {{code}}'),
      ],
      { unit: 'reqps' },
      [{ matcher: { id: 'byFrameRefID', options: 'B' }, properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }] }],
      links=['TencentLiveApiErrorsHigh'],
    ),
    timeseries(
      19,
      'API request duration (p50 / p95)',
      "Quantiles of the Tencent Cloud API call durations per account, from the exporter's histogram.",
      [16, 76, 8, 7],
      [
        target('A', 'histogram_quantile(0.5, sum by (%s) (rate(tencent_live_exporter_api_request_duration_seconds_bucket{%s, account=~"$account"}[$__rate_interval])))' % [by(['account', 'le']), sel], '{{account}} p50'),
        target('B', 'histogram_quantile(0.95, sum by (%s) (rate(tencent_live_exporter_api_request_duration_seconds_bucket{%s, account=~"$account"}[$__rate_interval])))' % [by(['account', 'le']), sel], '{{account}} p95'),
      ],
      { unit: 's' },
    ),
    timeseries(
      20,
      'Invalid answer fields',
      'Fields of API answers that were unusable and skipped, per second, by account and field.',
      [0, 83, 12, 6],
      [target('A', 'sum by (%s) (rate(tencent_live_exporter_invalid_fields_total{%s, account=~"$account"}[$__rate_interval]))' % [by(['account', 'field']), sel], '{{account}} {{field}}')],
      { unit: 'short' },
    ),
    panel(
      21,
      'table',
      'Exporter build',
      'Version and revision of every running exporter of the selected jobs.',
      [12, 83, 12, 6],
      [target('A', 'tencent_live_exporter_build_info{%s}' % sel, instant=true, format='table')],
    ) + {
      fieldConfig: { defaults: { custom: { align: 'auto', cellOptions: { type: 'auto' } } }, overrides: [] },
      options: { showHeader: true, cellHeight: 'sm' },
      transformations: [{ id: 'organize', options: { excludeByName: { Time: true, Value: true, __name__: true } } }],
    },
  ];

  // Variables: datasource, cluster (with clusterLabel), job, account, package type, status.
  local queryVariable(name, label, query, extra={}) = {
    name: name,
    label: label,
    type: 'query',
    datasource: datasource,
    definition: query,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    regex: '',
    sort: 1,
    multi: true,
    includeAll: true,
    current: { selected: true, text: ['All'], value: ['$__all'] },
    options: [],
    hide: 0,
  } + extra;
  local variables =
    [{
      name: 'datasource',
      label: 'Data source',
      type: 'datasource',
      query: 'prometheus',
      current: {},
      hide: 0,
      includeAll: false,
      multi: false,
      options: [],
      refresh: 1,
      regex: '',
    }]
    + (if hasCluster then [queryVariable('cluster', 'Cluster', 'label_values(tencent_live_up{%s}, %s)' % [c.exporterSelector, cl])] else [])
    + [
      queryVariable('job', 'Job', 'label_values(tencent_live_up{%s%s}, job)' % [clusterMatcher, c.exporterSelector]),
      queryVariable('account', 'Account', 'label_values(tencent_live_up{%s}, account)' % sel, { allValue: '.*' }),
      queryVariable(
        'package_type',
        'Package type',
        'label_values(tencent_live_package_expiry_timestamp_seconds{%s, account=~"$account"}, package_type)' % sel,
        { allValue: '.*' },
      ),
      {
        name: 'status',
        label: 'Status (table)',
        type: 'custom',
        description: 'Package statuses shown in the Packages table.',
        query: 'unused,in_use,expired,frozen,exhausted,refunded',
        multi: true,
        includeAll: true,
        allValue: '.*',
        hide: 0,
        current: { selected: true, text: ['unused', 'in_use'], value: ['unused', 'in_use'] },
        options: [{ selected: false, text: 'All', value: '$__all' }] + [
          { selected: s == 'unused' || s == 'in_use', text: s, value: s }
          for s in ['unused', 'in_use', 'expired', 'frozen', 'exhausted', 'refunded']
        ],
      },
    ];

  {
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
    ] + [
      { type: 'panel', id: p[0], name: p[1], version: '' }
      for p in [['stat', 'Stat'], ['bargauge', 'Bar gauge'], ['timeseries', 'Time series'], ['table', 'Table'], ['state-timeline', 'State timeline']]
    ],
    annotations: {
      list: [{
        builtIn: 1,
        datasource: { type: 'grafana', uid: '-- Grafana --' },
        enable: true,
        hide: true,
        iconColor: 'rgba(0, 211, 255, 1)',
        name: 'Annotations & Alerts',
        type: 'dashboard',
      }],
    },
    description: 'Tencent Cloud Live prepaid packages (traffic, transcode, top speed codec, co-anchoring) from tencent-live-exporter: runway, quota at risk, daily deductions, frozen quota, quota left, expiry and exporter health.',
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [],
    liveNow: false,
    panels: panels,
    refresh: '5m',
    schemaVersion: 39,
    tags: ['tencent-cloud', 'live', 'tencent-live-exporter'],
    templating: { list: variables },
    time: { from: 'now-' + duration(7 * day), to: 'now' },
    timepicker: {},
    timezone: c.dashboardTimezone,
    title: 'Tencent Live packages',
    uid: 'tencent-live-packages',
    version: 1,
    weekStart: '',
  }
