// Validates rendered Kubernetes manifests (kubectl kustomize output) of deploy/k8s:
//  1. every object against the Kubernetes API's OpenAPI schema of its kind (kubernetes-models 5.1.0; KEDA's CRD schema
//     from @kubernetes-models/keda), and unknown (misspelt) fields refused as well: the compiled schemas allow extra
//     properties, so every field is looked up in the models' type declarations (*.d.ts), object by object;
//  2. RamPay's own rules: one server replica on a ReadWriteOnce volume with the grace period its stop needs, probes on
//     /health/live and /health/ready, memory requests equal to limits, non-root, secrets by reference only, every
//     RAMPAY_* variable a real setting (README's table), and every selector (Services, PDBs, NetworkPolicies,
//     ScaledObjects) matching something.
// Usage: node validate.mjs README.md rendered.yaml...   Exit 1 with the list of problems.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const [readme, ...files] = process.argv.slice(2);
const problems = [];
const fail = (where, what) => problems.push(`${where}: ${what}`);
const settings = new Set([...readFileSync(readme, "utf8").matchAll(/^\| `(RamPay:[A-Za-z:]+)`/gm)].map((m) => m[1].toLowerCase()));
if (settings.size < 50) fail(readme, "the settings table was not found");

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const path = group === "keda.sh" ? `@kubernetes-models/keda/keda.sh/${version}`
    : group === null ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
  try { return (await import(path))[kind]; } catch { return null; }
}

// ---- unknown fields, from the type declarations: "name"?: Type; lines of each interface, Type resolved through imports.
const modules = join(dirname(fileURLToPath(import.meta.url)), "node_modules");
// The Secrets the manifests may name: they are made by the operator (never rendered), and each is documented by an
// example in base/secret.example.yaml.
const secretExamples = parseAllDocuments(readFileSync(join(dirname(fileURLToPath(import.meta.url)), "..", "base", "secret.example.yaml"), "utf8"))
  .map((d) => d.toJS()).filter((o) => o?.metadata?.name);
const knownSecrets = new Set(secretExamples.map((o) => o.metadata.name));
if (!knownSecrets.has("rampay-secrets")) fail("base/secret.example.yaml", "the example of Secret rampay-secrets was not found");
const declarations = new Map();
function declaration(file) {
  if (!declarations.has(file)) {
    const text = readFileSync(file, "utf8");
    const imports = new Map([...text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)].map((m) => [m[1], m[2]]));
    const body = text.slice(text.indexOf("export interface "), text.indexOf("\n}", text.indexOf("export interface ")));
    // A property's type may run over several lines (maps: "labels"?: {\n [key: string]: string;\n };): the first line is enough.
    const props = new Map([...body.matchAll(/^ {4}"([^"]+)"\??: (.*?);?$/gm)].map((m) => [m[1], m[2]]));
    declarations.set(file, { imports, props });
  }
  return declarations.get(file);
}
function resolveImport(from, spec) {
  const path = spec.startsWith(".") ? join(dirname(from), spec) : join(modules, spec);
  const dts = path.replace(/\.js$/, "") + ".d.ts";
  return existsSync(dts) ? dts : null;
}
function checkFields(where, value, file, path) {
  if (value === null || typeof value !== "object" || !file) return;
  const { imports, props } = declaration(file);
  for (const [key, child] of Object.entries(value)) {
    const type = props.get(key);
    if (type === undefined) { fail(where, `unknown field ${path}${key}`); continue; }
    const element = type.match(/^Array<(\w+)>$/)?.[1] ?? type;
    if (!imports.has(element)) continue; // a string, number, union, map or free-form object
    const childFile = resolveImport(file, imports.get(element));
    for (const item of Array.isArray(child) ? child : [child]) checkFields(where, item, childFile, `${path}${key}${Array.isArray(child) ? "[]" : ""}.`);
  }
}
function topDeclaration(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const dir = group === "keda.sh" ? join(modules, "@kubernetes-models/keda/keda.sh", version)
    : group === null ? join(modules, "kubernetes-models", version) : join(modules, "kubernetes-models", group, version);
  const file = join(dir, `${kind}.d.ts`);
  return existsSync(file) ? file : null;
}

const objects = [];
for (const file of files) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) { fail(file, doc.errors.map(String).join("; ")); continue; }
    const o = doc.toJSON();
    if (o) objects.push({ file, o });
  }
}

for (const { file, o } of objects) {
  const where = `${file}: ${o.kind}/${o.metadata?.name}`;
  const Model = await modelFor(o.apiVersion, o.kind);
  if (!Model) { fail(where, `no schema for ${o.apiVersion} ${o.kind}`); continue; }
  try { new Model(o).validate(); } catch (e) { fail(where, `schema: ${e.message}`); }
  const top = topDeclaration(o.apiVersion, o.kind);
  if (!top) fail(where, "no type declaration to check its fields against");
  else checkFields(where, o, top, "");
}

// ---- RamPay's rules
const byKind = (k) => objects.map((x) => x.o).filter((o) => o.kind === k);
const workloads = [...byKind("StatefulSet"), ...byKind("Deployment")];
const matches = (selector, labels) => Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
for (const w of workloads) {
  const where = `${w.kind}/${w.metadata.name}`;
  const pod = w.spec.template.spec;
  if (!matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels)) fail(where, "the selector does not match the pod template");
  if (pod.securityContext?.runAsNonRoot !== true || pod.securityContext?.runAsUser !== 1654) fail(where, "not run as the non-root user 1654");
  for (const c of pod.containers) {
    const r = c.resources ?? {};
    if (!r.requests?.memory || r.requests.memory !== r.limits?.memory) fail(where, `${c.name}: memory request must equal its limit (${JSON.stringify(r)})`);
    if (!r.requests?.cpu) fail(where, `${c.name}: no CPU request`);
    if (c.livenessProbe?.httpGet?.path !== "/health/live") fail(where, `${c.name}: liveness probe is not /health/live`);
    if (c.readinessProbe?.httpGet?.path !== "/health/ready") fail(where, `${c.name}: readiness probe is not /health/ready`);
    for (const e of c.env ?? []) {
      if (e.value !== undefined && /PASSWORD|TOKEN|CONNECTION|SECRET/i.test(e.name)) fail(where, `${e.name} is a secret given by value: use secretKeyRef`);
      if (e.valueFrom?.secretKeyRef && !knownSecrets.has(e.valueFrom.secretKeyRef.name)) fail(where, `${e.name}: unknown Secret ${e.valueFrom.secretKeyRef.name}`);
      if (w.metadata.name === "rampay-server") checkSetting(where, e.name);
    }
    for (const ref of c.envFrom ?? []) {
      if (ref.secretRef) {
        if (!knownSecrets.has(ref.secretRef.name)) fail(where, `envFrom names a Secret with no example in base/secret.example.yaml: ${ref.secretRef.name}`);
        continue;
      }
      const cm = byKind("ConfigMap").find((m) => m.metadata.name === ref.configMapRef?.name);
      if (!cm) { fail(where, `envFrom names a ConfigMap that is not there: ${ref.configMapRef?.name}`); continue; }
      for (const k of Object.keys(cm.data ?? {})) checkSetting(`ConfigMap/${cm.metadata.name}`, k);
    }
  }
}
function checkSetting(where, name) {
  if (!name.startsWith("RAMPAY_")) return;
  if (name.startsWith("RAMPAY_WORKER__")) return; // the worker's own settings (src/RamPay.Worker), not the server's table
  const key = ("RamPay:" + name.slice(7).replaceAll("__", ":")).toLowerCase();
  if (!settings.has(key)) fail(where, `${name} is not a setting of the README's table`);
}

const server = byKind("StatefulSet").find((s) => s.metadata.name === "rampay-server");
if (!server) fail("rampay-server", "no StatefulSet");
else {
  if (server.spec.replicas !== 1) fail("StatefulSet/rampay-server", "one writer per journal: replicas must be 1");
  const claim = server.spec.volumeClaimTemplates?.[0];
  if (JSON.stringify(claim?.spec.accessModes) !== '["ReadWriteOnce"]') fail("StatefulSet/rampay-server", "the journal's volume must be ReadWriteOnce");
  if (!server.spec.template.spec.containers[0].volumeMounts.some((m) => m.name === claim?.metadata.name && m.mountPath === "/var/lib/rampay"))
    fail("StatefulSet/rampay-server", "the claim is not mounted at /var/lib/rampay");
  if (server.spec.template.spec.terminationGracePeriodSeconds < 60) fail("StatefulSet/rampay-server", "the stop needs a grace period of 60 s");
}
for (const s of byKind("Service")) if (!workloads.some((w) => matches(s.spec.selector, w.spec.template.metadata.labels))) fail(`Service/${s.metadata.name}`, "selects no pod");
for (const p of byKind("PodDisruptionBudget")) if (!workloads.some((w) => matches(p.spec.selector.matchLabels, w.spec.template.metadata.labels))) fail(`PodDisruptionBudget/${p.metadata.name}`, "selects no pod");
for (const n of byKind("NetworkPolicy")) if (!workloads.some((w) => matches(n.spec.podSelector.matchLabels, w.spec.template.metadata.labels))) fail(`NetworkPolicy/${n.metadata.name}`, "selects no pod");
// A worker that calls the server holds a service token whose refresh token rotates (src/RamPay.Worker/ServiceTokens.cs):
// it must keep the newest pair in --token-file on a claim (an emptyDir dies with the pod and the Secret's refresh token
// works once), get the refresh token from a Secret, and be one process: one replica, Recreate, no autoscaling.
for (const d of byKind("Deployment")) {
  const pod = d.spec.template.spec, c = pod.containers[0], args = c.args ?? [];
  if (!args.includes("--server")) continue;
  const where = `Deployment/${d.metadata.name}`;
  const file = args[args.indexOf("--token-file") + 1];
  if (!args.includes("--token-file")) { fail(where, "calls the server (--server) without --token-file: its renewed token would be lost on restart"); continue; }
  const mount = (c.volumeMounts ?? []).find((m) => file.startsWith(m.mountPath.replace(/\/?$/, "/")));
  const volume = pod.volumes?.find((v) => v.name === mount?.name);
  if (!volume?.persistentVolumeClaim || !byKind("PersistentVolumeClaim").some((p) => p.metadata.name === volume.persistentVolumeClaim.claimName))
    fail(where, `--token-file ${file} is not on a PersistentVolumeClaim of these manifests`);
  const secrets = (c.envFrom ?? []).map((r) => secretExamples.find((o) => o.metadata.name === r.secretRef?.name)).filter(Boolean);
  for (const key of ["RAMPAY_SERVICE_TOKEN", "RAMPAY_SERVICE_REFRESH_TOKEN"])
    if (!secrets.some((o) => key in (o.stringData ?? o.data ?? {}))) fail(where, `no ${key} from a Secret (envFrom)`);
  if (d.spec.replicas !== 1 || d.spec.strategy?.type !== "Recreate") fail(where, "one service token is one process: replicas 1 and strategy Recreate");
  if (byKind("ScaledObject").some((so) => so.spec.scaleTargetRef.name === d.metadata.name)) fail(where, "one service token is one process: no ScaledObject");
}
for (const so of byKind("ScaledObject")) if (!byKind("Deployment").some((d) => d.metadata.name === so.spec.scaleTargetRef.name)) fail(`ScaledObject/${so.metadata.name}`, "scales no Deployment");
for (const file of files) {
  const namespaces = new Set(objects.filter((x) => x.file === file).map((x) => x.o.metadata?.namespace).filter(Boolean));
  if (namespaces.size !== 1) fail(file, `objects in ${namespaces.size} namespaces (${[...namespaces]}): an overlay sets one`);
}

if (problems.length) {
  console.error(`k8s-validate: ${problems.length} problem(s):\n  ` + problems.join("\n  "));
  process.exit(1);
}
console.log(`k8s-validate: ${objects.length} objects valid (${[...new Set(objects.map((x) => x.o.kind))].join(", ")})`);
