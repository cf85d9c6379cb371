// A YAML emitter for Prometheus rule files that reads like a hand-written one: `record` or
// `alert` first, then `expr`, `for`, `keep_firing_for`, `labels`, `annotations` (std's
// manifestYamlDoc sorts keys alphabetically); multi-line strings as `|` blocks; plain scalars
// where YAML reads them back as the same string, single-quoted otherwise (JSON-quoted with a
// control character).
local order = ['name', 'interval', 'record', 'alert', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations', 'summary', 'description', 'runbook_url', 'rules'];
local rank(k) = local i = std.find(k, order); if std.length(i) > 0 then i[0] else std.length(order);
local keys(o) = std.sort(std.objectFields(o), function(k) rank(k) * 1000 + std.length(k));

local all(xs) = std.foldl(function(a, b) a && b, xs, true);
local plainChars = std.set(std.stringChars('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-./()=<>*+,:;$%"\'{}[]|!~&?@`#^\\'));
local firstChars = std.set(std.stringChars('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ('));
local reserved = ['true', 'false', 'null', 'yes', 'no', 'on', 'off', 'y', 'n', '~'];
local isPlain(s) =
  std.length(s) > 0
  && std.setMember(s[0], firstChars)
  && all([std.setMember(c, plainChars) for c in std.stringChars(s)])
  && std.length(std.findSubstr(': ', s)) == 0
  && std.length(std.findSubstr(' #', s)) == 0
  && s[std.length(s) - 1] != ' ' && s[std.length(s) - 1] != ':'
  && !std.member(reserved, std.asciiLower(s));
// A number-looking string (a duration such as 15m is not one) would need quotes: treat digits-
// first strings (durations) as plain only when they end in a unit letter.
local isDuration(s) = std.length(s) > 1 && all([std.setMember(c, std.set(std.stringChars('0123456789dhmsw'))) for c in std.stringChars(s)]) && std.setMember(s[std.length(s) - 1], std.set(std.stringChars('dhmsw')));

local scalar(v, indent) =
  if std.isString(v) then
    if std.length(std.findSubstr('\n', v)) > 0 then
      local body = std.rstripChars(v, '\n');
      '|' + (if std.endsWith(v, '\n') then '' else '-') + '\n' + std.join('\n', [if l == '' then '' else indent + l for l in std.split(body, '\n')])
    else if isPlain(v) || isDuration(v) then v
    else if all([std.setMember(c, plainChars) for c in std.stringChars(v)]) then "'" + std.strReplace(v, "'", "''") + "'"
    else std.escapeStringJson(v)
  else if std.isNumber(v) then std.toString(v)
  else if std.isBoolean(v) then (if v then 'true' else 'false')
  else if v == null then 'null'
  else error 'not a scalar';

local isScalar(v) = !std.isObject(v) && !std.isArray(v);

local value(v, indent) =
  if std.isObject(v) then
    if std.length(v) == 0 then ' {}'
    else '\n' + std.join('\n', [indent + k + ':' + value(v[k], indent + '  ') for k in keys(v)])
  else if std.isArray(v) then
    if std.length(v) == 0 then ' []'
    else '\n' + std.join('\n', [indent + '- ' + item(e, indent + '  ') for e in v])
  else ' ' + scalar(v, indent),

// An array element: an object's first key on the dash's line.
      item(e, indent) =
  if std.isObject(e) && std.length(e) > 0 then
    local ks = keys(e);
    std.join('\n', [(if i == 0 then '' else indent) + ks[i] + ':' + value(e[ks[i]], indent + '  ') for i in std.range(0, std.length(ks) - 1)])
  else if isScalar(e) then scalar(e, indent)
  else error 'nested arrays are not used in rule files';

{
  // The document (an object) as YAML, ending with a newline.
  manifest(doc):: std.join('\n', [k + ':' + value(doc[k], '  ') for k in keys(doc)]) + '\n',
}
