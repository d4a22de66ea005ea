#!/usr/bin/env node
// Validates the Dashboard Studio (version="2") views of a Splunk app.
//
//   node .ci/validate-dashboards.mjs [--prefix NPM_DIR] APP_DIR_OR_VIEW_XML...
//
// For each view XML whose root is <dashboard version="2"> (or <form version="2">)
// it takes the JSON of <definition><![CDATA[ ... ]]></definition> and checks it
// against the JSON schema that @splunk/dashboard-definition builds
// (createSchemaBasedOnDicts over its defaultSchema), with the visualization
// option schemas of @splunk/visualization-schemas (the ones Splunk's own
// @splunk/visualizations use) and the type names of Splunk Enterprise's
// presets, using ajv. Then it checks the references a schema cannot see: data
// sources, inputs and layouts that are named but not defined. A definition
// in the pre-tabs layout form is first migrated as Splunk does on load (with
// @splunk/dashboard-utils' migrateToTabsLayout) and reported with a warning.
// Simple XML views (version="1.1") are skipped: AppInspect checks those.
//
// NPM_DIR is a directory whose node_modules holds @splunk/dashboard-definition,
// @splunk/visualization-schemas and ajv (.ci/splunk-app-checks installs them);
// by default ${XDG_CACHE_HOME:-$HOME/.cache}/sluice-ci/npm.
// Exit status: 0 all views valid, 1 a view is invalid, 2 usage or setup error.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function usage(msg) {
  if (msg) console.error(`validate-dashboards: ${msg}`);
  console.error('usage: validate-dashboards.mjs [--prefix NPM_DIR] APP_DIR_OR_VIEW_XML...');
  process.exit(2);
}

let prefix = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'sluice-ci', 'npm');
const targets = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--prefix') {
    if (i + 1 >= argv.length) usage('--prefix needs a directory');
    prefix = argv[++i];
  } else if (argv[i] === '-h' || argv[i] === '--help') {
    usage();
  } else {
    targets.push(argv[i]);
  }
}
if (targets.length === 0) usage('no app directory or view file given');

const require = createRequire(path.join(path.resolve(prefix), 'package.json'));
let Ajv, dd, vs, du;
try {
  Ajv = require('ajv');
  dd = require('@splunk/dashboard-definition');
  vs = require('@splunk/visualization-schemas');
  du = require('@splunk/dashboard-utils'); // dashboard-definition's own dependency, same version
} catch (e) {
  console.error(`validate-dashboards: cannot load the npm packages from ${prefix}/node_modules: ${e.message}`);
  process.exit(2);
}

// ---------------------------------------------------------------- the schema

// Visualization type -> option schema export of @splunk/visualization-schemas,
// as @splunk/visualizations' *.config.js files pair them, for the types that
// @splunk/dashboard-presets (VisualizationPresets, used by the Enterprise
// preset) registers. splunk.richtext and splunk.processtree exist in
// @splunk/visualizations but are not in that preset, so they are refused here.
const VIZ_OPTION_SCHEMAS = {
  'splunk.area': 'areaOptionsSchema',
  'splunk.bar': 'barOptionsSchema',
  'splunk.bubble': 'bubbleOptionsSchema',
  'splunk.choropleth.svg': 'choroplethSvgOptionsSchema',
  'splunk.column': 'columnOptionsSchema',
  'splunk.ellipse': 'ellipseOptionsSchema',
  'splunk.events': 'eventsOptionsSchema',
  'splunk.fillergauge': 'fillerGaugeOptionsSchema',
  'splunk.image': 'imageOptionsSchema',
  'splunk.line': 'lineOptionsSchema',
  'splunk.linkgraph': 'linkGraphOptionsSchema',
  'splunk.map': 'mapOptionsSchema',
  'splunk.markdown': 'markdownOptionsSchema',
  'splunk.markergauge': 'markerGaugeOptionsSchema',
  'splunk.networkGraph': 'networkGraphOptionsSchema',
  'splunk.parallelcoordinates': 'parallelCoordinatesOptionsSchema',
  'splunk.pie': 'pieOptionsSchema',
  'splunk.punchcard': 'punchcardOptionsSchema',
  'splunk.rectangle': 'rectangleOptionsSchema',
  'splunk.sankey': 'sankeyOptionsSchema',
  'splunk.scatter': 'scatterOptionsSchema',
  'splunk.singlevalue': 'singleValueOptionsSchema',
  'splunk.singlevalueicon': 'singleValueIconOptionsSchema',
  'splunk.singlevalueradial': 'singleValueRadialOptionsSchema',
  'splunk.table': 'tableOptionsSchema',
  'splunk.timeline': 'timelineOptionsSchema',
};
// Types of the Enterprise preset whose option schemas live in packages that
// need React (@splunk/dashboard-layouts, -inputs, @splunk/datasources): only
// the type name is checked for these.
const OTHER_VIZ_TYPES = ['abslayout.line'];
const INPUT_TYPES = ['input.timerange', 'input.dropdown', 'input.multiselect', 'input.text', 'input.number', 'input.button'];
const DATA_SOURCE_TYPES = ['ds.search', 'ds.chain', 'ds.savedSearch', 'ds.test'];
const LAYOUT_TYPES = ['absolute', 'grid'];

// usedTypes: the visualization types the views use (in visualizations or in
// defaults.visualizations). Every known type is allowed, but only the option
// schemas of the used ones are compiled: compiling all of them takes seconds.
function buildValidator(usedTypes) {
  const visualizationDict = {};
  for (const [type, exportName] of Object.entries(VIZ_OPTION_SCHEMAS)) {
    const optionSchema = vs[exportName];
    if (!optionSchema) throw new Error(`@splunk/visualization-schemas has no export ${exportName}`);
    // As the presets do with allowTokenCoercion: "$token$" is accepted where a
    // number or boolean is expected.
    visualizationDict[type] = usedTypes.has(type) ? dd.addTokenSupport(optionSchema) : {};
  }
  for (const type of OTHER_VIZ_TYPES) visualizationDict[type] = {};
  const only = (types) => Object.fromEntries(types.map((t) => [t, {}]));
  const schema = dd.createSchemaBasedOnDicts({
    visualizationDict,
    inputDict: only(INPUT_TYPES),
    dataSourceDict: only(DATA_SOURCE_TYPES),
    layoutDict: only(LAYOUT_TYPES),
  });
  // strict: false because the published option schemas use union types and
  // "pattern" without "type", which ajv's strict mode refuses to compile.
  const ajv = new Ajv({ allErrors: true, strict: false, code: { optimize: false } });
  return ajv.compile(schema);
}

// ------------------------------------------------------------- XML handling

const ENTITIES = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
function unescapeXml(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? m;
  });
}

function parseAttrs(s) {
  const attrs = {};
  for (const m of s.matchAll(/([A-Za-z_][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    attrs[m[1]] = unescapeXml(m[2] ?? m[3]);
  }
  return attrs;
}

// Blanks XML comments and the prolog (keeping offsets and line numbers), but
// not inside CDATA sections.
function blankComments(xml) {
  let out = '';
  let i = 0;
  while (i < xml.length) {
    if (xml.startsWith('<![CDATA[', i)) {
      const end = xml.indexOf(']]>', i);
      const j = end < 0 ? xml.length : end + 3;
      out += xml.slice(i, j);
      i = j;
    } else if (xml.startsWith('<!--', i) || xml.startsWith('<?', i) || xml.startsWith('<!DOCTYPE', i)) {
      const close = xml.startsWith('<!--', i) ? '-->' : '>';
      const end = xml.indexOf(close, i);
      const j = end < 0 ? xml.length : end + close.length;
      out += xml.slice(i, j).replace(/[^\n]/g, ' ');
      i = j;
    } else {
      out += xml[i++];
    }
  }
  return out;
}

const lineAt = (s, offset) => s.slice(0, offset).split('\n').length;

// Text content of each direct-or-nested <tag ...>...</tag>: CDATA sections
// taken as they are, other text unescaped. Returns [{attrs, text, line}].
function elements(xml, tag) {
  const found = [];
  const open = new RegExp(`<${tag}(\\s[^>]*)?(/?)>`, 'g');
  let m;
  while ((m = open.exec(xml)) !== null) {
    const attrs = parseAttrs(m[1] || '');
    const line = lineAt(xml, m.index);
    if (m[2] === '/') { found.push({ attrs, text: '', line }); continue; }
    let i = open.lastIndex;
    let text = '';
    for (;;) {
      if (i >= xml.length) throw new Error(`<${tag}> at line ${line} is not closed`);
      if (xml.startsWith('<![CDATA[', i)) {
        const end = xml.indexOf(']]>', i);
        if (end < 0) throw new Error(`unterminated CDATA in <${tag}> at line ${line}`);
        text += xml.slice(i + 9, end);
        i = end + 3;
      } else if (xml.startsWith(`</${tag}`, i)) {
        break;
      } else if (xml[i] === '<') {
        throw new Error(`unexpected markup inside <${tag}> at line ${lineAt(xml, i)}`);
      } else {
        const next = xml.indexOf('<', i);
        const j = next < 0 ? xml.length : next;
        text += unescapeXml(xml.slice(i, j));
        i = j;
      }
    }
    found.push({ attrs, text, line });
    open.lastIndex = i;
  }
  return found;
}

// -------------------------------------------------------- reference checks

function referenceErrors(def) {
  const errors = [];
  const warnings = [];
  const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});
  const dataSources = obj(def.dataSources);
  const visualizations = obj(def.visualizations);
  const inputs = obj(def.inputs);
  const layout = obj(def.layout);
  const layoutDefinitions = obj(layout.layoutDefinitions);

  for (const [id, ds] of Object.entries(dataSources)) {
    const options = obj(ds && ds.options);
    if ((ds.type === 'ds.search' || ds.type === 'ds.chain') && !(typeof options.query === 'string' && options.query.trim())) {
      errors.push(`/dataSources/${id}/options/query: a ${ds.type} needs a non-empty query`);
    }
    if (ds.type === 'ds.savedSearch' && !(typeof options.ref === 'string' && options.ref.trim())) {
      errors.push(`/dataSources/${id}/options/ref: a ds.savedSearch needs the name of a saved search`);
    }
    if (ds.type === 'ds.chain') {
      if (typeof ds.extend !== 'string' || !(ds.extend in dataSources)) {
        errors.push(`/dataSources/${id}/extend: a ds.chain must extend a defined data source (got ${JSON.stringify(ds.extend)})`);
      }
    }
  }
  const checkBindings = (kind, items) => {
    for (const [id, item] of Object.entries(items)) {
      for (const [role, dsId] of Object.entries(obj(item && item.dataSources))) {
        if (!(dsId in dataSources)) errors.push(`/${kind}/${id}/dataSources/${role}: data source "${dsId}" is not defined`);
      }
    }
  };
  checkBindings('visualizations', visualizations);
  checkBindings('inputs', inputs);

  (Array.isArray(layout.globalInputs) ? layout.globalInputs : []).forEach((inputId, i) => {
    if (!(inputId in inputs)) errors.push(`/layout/globalInputs/${i}: input "${inputId}" is not defined`);
  });
  const tabItems = Array.isArray(obj(layout.tabs).items) ? layout.tabs.items : [];
  tabItems.forEach((tab, i) => {
    if (tab && !(tab.layoutId in layoutDefinitions)) {
      errors.push(`/layout/tabs/items/${i}/layoutId: layout "${tab.layoutId}" is not in layoutDefinitions`);
    }
  });
  const placed = new Set();
  for (const [layoutId, ld] of Object.entries(layoutDefinitions)) {
    (Array.isArray(ld && ld.structure) ? ld.structure : []).forEach((entry, i) => {
      const where = `/layout/layoutDefinitions/${layoutId}/structure/${i}`;
      if (!entry || typeof entry.item !== 'string') {
        errors.push(`${where}: a structure entry needs an "item"`);
        return;
      }
      placed.add(entry.item);
      if (!(entry.item in visualizations) && !(entry.item in inputs)) {
        errors.push(`${where}/item: "${entry.item}" is neither a visualization nor an input`);
      }
      if (!entry.position || typeof entry.position !== 'object') {
        errors.push(`${where}/position: missing`);
      }
    });
    if (!tabItems.some((t) => t && t.layoutId === layoutId)) {
      warnings.push(`/layout/layoutDefinitions/${layoutId}: not shown by any tab`);
    }
  }
  for (const id of Object.keys(visualizations)) {
    if (!placed.has(id)) warnings.push(`/visualizations/${id}: not placed in any layout`);
  }
  return { errors, warnings };
}

function pointerGet(doc, pointer) {
  let v = doc;
  for (const part of pointer.split('/').slice(1)) {
    if (v === null || typeof v !== 'object') return undefined;
    v = v[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return v;
}

// One line per failing value. When a value failed an anyOf/oneOf, the
// branches' complaints are joined on that line instead of listed apart.
function formatAjvErrors(errs, def) {
  const byPath = new Map();
  for (const e of errs) {
    if (e.keyword === 'if') continue; // "must match "then" schema": the real error is listed too
    const key = e.instancePath || '/';
    if (!byPath.has(key)) byPath.set(key, []);
    byPath.get(key).push(e);
  }
  const lines = [];
  for (const [where, list] of byPath) {
    const describe = (e) => {
      let d = e.message;
      if (e.params && e.params.allowedValues) d += `: ${e.params.allowedValues.join(', ')}`;
      if (e.params && e.params.additionalProperty) d += `: "${e.params.additionalProperty}"`;
      return d;
    };
    const alternatives = list.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
    const rest = [...new Set(list.filter((e) => !alternatives.includes(e)).map(describe))];
    if (alternatives.length) {
      const value = JSON.stringify(pointerGet(def, where === '/' ? '' : where));
      const shown = value === undefined ? 'value' : value.length > 60 ? `${value.slice(0, 57)}...` : value;
      lines.push(`${where}: ${shown} is not accepted; it ${rest.join(' | or it ')}`);
    } else {
      for (const d of rest) lines.push(`${where}: ${d}`);
    }
  }
  return lines;
}

// -------------------------------------------------------------------- main

function viewFiles(target) {
  const st = fs.statSync(target, { throwIfNoEntry: false });
  if (!st) usage(`${target}: no such file or directory`);
  if (st.isFile()) return [target];
  const files = [];
  for (const sub of ['default', 'local']) {
    const dir = path.join(target, sub, 'data', 'ui', 'views');
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).sort()) {
      if (name.endsWith('.xml')) files.push(path.join(dir, name));
    }
  }
  return files;
}

const files = targets.flatMap(viewFiles);
const MAX_LINES = 25;

// Pass 1: read each view and take its definition JSON.
const views = [];
let skipped = 0;
for (const file of files) {
  const view = { file, problems: [], notes: [], def: undefined };
  let xml;
  try {
    xml = blankComments(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    view.problems.push(`cannot read: ${e.message}`);
    views.push(view);
    continue;
  }
  const root = /<([A-Za-z_][\w:.-]*)(\s[^>]*)?>/.exec(xml);
  const rootAttrs = root ? parseAttrs(root[2] || '') : {};
  if (!root || !['dashboard', 'form'].includes(root[1])) {
    console.log(`SKIP ${file}: root element is <${root ? root[1] : '?'}>, not <dashboard> or <form>`);
    skipped++;
    continue;
  }
  if ((rootAttrs.version || '').trim() !== '2') {
    console.log(`SKIP ${file}: not Dashboard Studio (version="${rootAttrs.version ?? ''}")`);
    skipped++;
    continue;
  }
  views.push(view);
  if (rootAttrs.theme !== undefined && !['light', 'dark'].includes(rootAttrs.theme)) {
    view.problems.push(`theme="${rootAttrs.theme}": must be "light" or "dark"`);
  }
  try {
    const labels = elements(xml, 'label');
    if (labels.length === 0 || !labels[0].text.trim()) view.notes.push('no <label>: Splunk lists the view under its file name');
    for (const meta of elements(xml, 'meta')) {
      try { JSON.parse(meta.text); } catch (e) { view.problems.push(`<meta> at line ${meta.line}: not JSON: ${e.message}`); }
    }
    const defs = elements(xml, 'definition');
    if (defs.length !== 1) {
      view.problems.push(`expected exactly one <definition>, found ${defs.length}`);
      continue;
    }
    let def;
    try {
      def = JSON.parse(defs[0].text);
    } catch (e) {
      view.problems.push(`<definition> at line ${defs[0].line}: not JSON: ${e.message}`);
      continue;
    }
    if (!def || typeof def !== 'object' || Array.isArray(def)) {
      view.problems.push('<definition>: the JSON must be an object');
      continue;
    }
    // The pre-tabs layout form ({type, options, structure} directly in
    // layout) is what Dashboard Studio wrote before tabs; the schema has only
    // the tabs form. Splunk migrates the old form when it loads a dashboard,
    // with @splunk/dashboard-utils' migrateToTabsLayout: do the same, then
    // validate what Splunk would use.
    if (def.layout && typeof def.layout === 'object' && !('tabs' in def.layout) && ('type' in def.layout || 'structure' in def.layout)) {
      const migration = du.migrateToTabsLayout({ definition: def });
      if (!migration.success) {
        view.problems.push(`layout: Splunk's migration to the tabs form fails: ${migration.reason}`);
        continue;
      }
      def = migration.definition;
      view.notes.push('layout is in the pre-tabs form (type/structure directly in layout); Splunk migrates it on load, it was validated as migrated');
    }
    view.def = def;
  } catch (e) {
    view.problems.push(e.message);
  }
}

// Pass 2: schema and references.
const usedTypes = new Set();
for (const { def } of views) {
  if (!def) continue;
  for (const viz of Object.values(def.visualizations || {})) if (viz && typeof viz.type === 'string') usedTypes.add(viz.type);
  for (const type of Object.keys((def.defaults && def.defaults.visualizations) || {})) usedTypes.add(type);
}
const validate = views.some((v) => v.def) ? buildValidator(usedTypes) : null;
let ok = 0;
let bad = 0;
for (const { file, problems, notes, def } of views) {
  if (def) {
    if (!validate(def)) problems.push(...formatAjvErrors(validate.errors, def).map((l) => `schema ${l}`));
    // The schema leaves the top level open; a misspelt section would be ignored by Splunk.
    for (const key of Object.keys(def)) {
      if (!(key in dd.defaultSchema.properties)) {
        problems.push(`/${key}: not a dashboard definition section (known: ${Object.keys(dd.defaultSchema.properties).join(', ')})`);
      }
    }
    const refs = referenceErrors(def);
    problems.push(...refs.errors);
    notes.push(...refs.warnings);
  }
  if (problems.length) {
    bad++;
    console.log(`FAIL ${file}`);
    for (const p of problems.slice(0, MAX_LINES)) console.log(`  error: ${p}`);
    if (problems.length > MAX_LINES) console.log(`  ... and ${problems.length - MAX_LINES} more`);
  } else {
    ok++;
    console.log(`ok   ${file}`);
  }
  for (const n of notes) console.log(`  warning: ${n}`);
}

console.log(`dashboard definitions: ${ok} valid, ${bad} invalid, ${skipped} skipped (not Dashboard Studio)`);
if (files.length === 0) console.log('(no view XML found)');
process.exit(bad ? 1 : 0);
