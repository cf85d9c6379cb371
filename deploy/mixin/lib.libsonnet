// Helpers: Prometheus duration strings and the aggregation label lists.
{
  // Seconds (a number, rounded to milliseconds) as a Prometheus duration: 7d, 6h, 1d12h, 5m, 1s250ms.
  duration(seconds)::
    local ms = std.max(1, std.floor(seconds * 1000 + 0.5));
    local units = [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000], ['ms', 1]];
    local step(acc, u) =
      local n = std.floor(acc.left / u[1]);
      { left: acc.left - n * u[1], out: acc.out + (if n > 0 then std.toString(n) + u[0] else '') };
    std.foldl(step, units, { left: ms, out: '' }).out,

  // A real-day duration in seconds, scaled to the configured day, as a Prometheus duration.
  scaled(config, seconds):: self.duration(seconds * config.daySeconds / 86400),

  // Label lists of the two levels, with the optional cluster label first.
  labels(config, names):: std.join(', ', (if config.clusterLabel != '' then [config.clusterLabel] else []) + names),
  pkg(config):: self.labels(config, ['account', 'package_type', 'package_id']),
  pair(config):: self.labels(config, ['account', 'package_type']),
  // Text (lines ending in a newline) indented by two spaces.
  indent(text):: std.join('\n', [if l == '' then l else '  ' + l for l in std.split(text, '\n')]),
  // A number as PromQL reads it, without a trailing .0 or an exponent for the usual sizes.
  num(x):: if x == std.floor(x) then std.toString(std.floor(x)) else std.toString(x),
}
