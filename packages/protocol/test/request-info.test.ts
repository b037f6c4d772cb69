import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestInfo, type RequestInfo } from '../src/index.ts';

/** The fields a case cares about; the rest must hold their empty value. */
type Expect = Partial<RequestInfo>;

const empty: RequestInfo = {
  isResourceRequest: false,
  path: '',
  verb: '',
  apiPrefix: '',
  apiGroup: '',
  apiVersion: '',
  namespace: '',
  resource: '',
  subresource: '',
  name: '',
  parts: [],
  connect: false,
};

function check(method: string, target: string, expect: Expect): void {
  const got = requestInfo(method, target);
  const want: RequestInfo = { ...empty, path: got.path, ...expect };
  assert.deepEqual(got, want, `${method} ${target}`);
}

const core = { isResourceRequest: true, apiPrefix: 'api', apiVersion: 'v1' } as const;
const apps = { isResourceRequest: true, apiPrefix: 'apis', apiGroup: 'apps', apiVersion: 'v1' } as const;

test('a GET of a collection is a list and a GET of a named object is a get', () => {
  check('GET', '/api/v1/namespaces/ns/pods', { ...core, verb: 'list', namespace: 'ns', resource: 'pods', parts: ['pods'] });
  check('GET', '/api/v1/namespaces/ns/pods/web-0', { ...core, verb: 'get', namespace: 'ns', resource: 'pods', name: 'web-0', parts: ['pods', 'web-0'] });
  check('GET', '/api/v1/nodes', { ...core, verb: 'list', resource: 'nodes', parts: ['nodes'] });
  check('GET', '/apis/apps/v1/deployments', { ...apps, verb: 'list', resource: 'deployments', parts: ['deployments'] });
});

test('HEAD is resolved like GET', () => {
  check('HEAD', '/api/v1/namespaces/ns/pods', { ...core, verb: 'list', namespace: 'ns', resource: 'pods', parts: ['pods'] });
  check('HEAD', '/api/v1/namespaces/ns/pods/a', { ...core, verb: 'get', namespace: 'ns', resource: 'pods', name: 'a', parts: ['pods', 'a'] });
});

test('the watch query turns a list into a watch unless it is 0 or false', () => {
  for (const q of ['watch=1', 'watch=true', 'watch=TRUE', 'watch=', 'watch', 'watch=yes', 'resourceVersion=5&watch=1']) {
    assert.equal(requestInfo('GET', `/api/v1/namespaces/ns/pods?${q}`).verb, 'watch', q);
  }
  for (const q of ['watch=0', 'watch=false', 'watch=False', 'watch=0&watch=1', 'watching=1', '']) {
    assert.equal(requestInfo('GET', `/api/v1/namespaces/ns/pods?${q}`).verb, 'list', q);
  }
});

test('the first watch value decides, as Go reads query values', () => {
  assert.equal(requestInfo('GET', '/api/v1/pods?watch=1&watch=0').verb, 'watch');
  // Go's ParseQuery drops pairs with a ';' or a malformed escape, so the next one counts.
  assert.equal(requestInfo('GET', '/api/v1/pods?watch=0;x&watch=1').verb, 'watch');
  assert.equal(requestInfo('GET', '/api/v1/pods?watch=%zz&watch=1').verb, 'watch');
  assert.equal(requestInfo('GET', '/api/v1/pods?w%61tch=1').verb, 'watch');
});

test('a named GET with a watch query stays a get, as in the API server', () => {
  check('GET', '/api/v1/namespaces/ns/pods/a?watch=1', { ...core, verb: 'get', namespace: 'ns', resource: 'pods', name: 'a', parts: ['pods', 'a'] });
});

test('the deprecated /watch/ prefix is a watch, on collections and on named objects', () => {
  check('GET', '/api/v1/watch/namespaces/ns/pods', { ...core, verb: 'watch', namespace: 'ns', resource: 'pods', parts: ['pods'] });
  check('GET', '/api/v1/watch/namespaces/ns/pods/a', { ...core, verb: 'watch', namespace: 'ns', resource: 'pods', name: 'a', parts: ['pods', 'a'] });
  check('GET', '/apis/apps/v1/watch/deployments?watch=0', { ...apps, verb: 'watch', resource: 'deployments', parts: ['deployments'] });
  check('GET', '/api/v1/watch/namespaces/ns', { ...core, verb: 'watch', namespace: 'ns', resource: 'namespaces', name: 'ns', parts: ['namespaces', 'ns'] });
});

test('the deprecated /proxy/ prefix is the proxy verb and takes no subresource', () => {
  check('GET', '/api/v1/proxy/namespaces/ns/services/web/a/b', {
    ...core,
    verb: 'proxy',
    namespace: 'ns',
    resource: 'services',
    name: 'web',
    parts: ['services', 'web', 'a', 'b'],
    connect: true,
  });
  check('POST', '/api/v1/proxy/nodes/n1/stats', { ...core, verb: 'proxy', resource: 'nodes', name: 'n1', parts: ['nodes', 'n1', 'stats'], connect: true });
});

test('a verb prefix with nothing after it is a resource request without a resource', () => {
  // The resolver errors here and the API server answers 500.
  check('GET', '/api/v1/watch', { ...core, verb: 'get' });
  check('GET', '/api/v1/proxy/', { ...core, verb: 'get' });
});

test('write methods map to create, update, patch, delete and deletecollection', () => {
  const cm = { ...core, namespace: 'ns', resource: 'configmaps' };
  check('POST', '/api/v1/namespaces/ns/configmaps', { ...cm, verb: 'create', parts: ['configmaps'] });
  check('POST', '/api/v1/namespaces/ns/configmaps?dryRun=All', { ...cm, verb: 'create', parts: ['configmaps'] });
  check('PUT', '/api/v1/namespaces/ns/configmaps/c', { ...cm, verb: 'update', name: 'c', parts: ['configmaps', 'c'] });
  check('PATCH', '/api/v1/namespaces/ns/configmaps/c', { ...cm, verb: 'patch', name: 'c', parts: ['configmaps', 'c'] });
  check('DELETE', '/api/v1/namespaces/ns/configmaps/c', { ...cm, verb: 'delete', name: 'c', parts: ['configmaps', 'c'] });
  check('DELETE', '/api/v1/namespaces/ns/configmaps', { ...cm, verb: 'deletecollection', parts: ['configmaps'] });
  check('delete', '/api/v1/namespaces/ns/configmaps', { ...cm, verb: 'deletecollection', parts: ['configmaps'] });
});

test('a method the API server does not map has an empty verb on resource paths', () => {
  assert.equal(requestInfo('OPTIONS', '/api/v1/pods').verb, '');
  assert.equal(requestInfo('CONNECT', '/api/v1/pods/a').verb, '');
  assert.equal(requestInfo('OPTIONS', '/version').verb, 'options');
});

test('a fieldSelector on metadata.name names the object of a list or watch', () => {
  const list = (q: string): RequestInfo => requestInfo('GET', `/api/v1/namespaces/ns/pods?${q}`);
  assert.equal(list('fieldSelector=metadata.name%3Dweb-0').name, 'web-0');
  assert.equal(list('fieldSelector=metadata.name==web-0&watch=1').name, 'web-0');
  assert.equal(list('fieldSelector=metadata.name==web-0&watch=1').verb, 'watch');
  assert.equal(list('fieldSelector=status.phase%3DRunning,metadata.name%3Da').name, 'a');
  assert.equal(list('fieldSelector=metadata.name%3Db,metadata.name%3Da').name, 'a', 'the first term in sorted order');
  assert.equal(list('fieldSelector=metadata.name!%3Da').name, '');
  assert.equal(list('fieldSelector=metadata.namespace%3Da').name, '');
  assert.equal(list('fieldSelector=metadata.name%3Da\\,b').name, 'a,b');
  // Unparsable selectors, invalid path segment names and other ListOptions that fail to decode leave the name empty.
  assert.equal(list('fieldSelector=metadata.name%3Da,nonsense').name, '');
  assert.equal(list('fieldSelector=metadata.name%3Da%3Db').name, '');
  assert.equal(list('fieldSelector=metadata.name%3Da\\').name, '');
  assert.equal(list('fieldSelector=metadata.name%3D..').name, '');
  assert.equal(list('fieldSelector=metadata.name%3Da%252Fb').name, '');
  assert.equal(list('fieldSelector=metadata.name%3Da&limit=ten').name, '');
  assert.equal(list('fieldSelector=metadata.name%3Da&timeoutSeconds=99999999999999999999').name, '');
  assert.equal(list('fieldSelector=metadata.name%3Da&limit=500').name, 'a');
  // Only collection gets read it: a delete of a collection stays a deletecollection.
  assert.deepEqual(
    [
      requestInfo('DELETE', '/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Da').verb,
      requestInfo('DELETE', '/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Da').name,
    ],
    ['deletecollection', ''],
  );
  assert.equal(requestInfo('GET', '/api/v1/watch/namespaces/ns/pods?fieldSelector=metadata.name%3Da').name, '');
});

test('namespaced paths give namespace, resource, name and subresource', () => {
  check('GET', '/api/v1/namespaces/NS/pods/NAME/log', {
    ...core,
    verb: 'get',
    namespace: 'NS',
    resource: 'pods',
    name: 'NAME',
    subresource: 'log',
    parts: ['pods', 'NAME', 'log'],
  });
  check('PUT', '/apis/apps/v1/namespaces/ns/deployments/d/scale', {
    ...apps,
    verb: 'update',
    namespace: 'ns',
    resource: 'deployments',
    name: 'd',
    subresource: 'scale',
    parts: ['deployments', 'd', 'scale'],
  });
  check('GET', '/api/v1/namespaces/ns/services/web/proxy/a/b', {
    ...core,
    verb: 'get',
    namespace: 'ns',
    resource: 'services',
    name: 'web',
    subresource: 'proxy',
    parts: ['services', 'web', 'proxy', 'a', 'b'],
    connect: true,
  });
});

test('the Namespace object is resource namespaces named and namespaced by itself', () => {
  check('GET', '/api/v1/namespaces', { ...core, verb: 'list', resource: 'namespaces', parts: ['namespaces'] });
  check('POST', '/api/v1/namespaces', { ...core, verb: 'create', resource: 'namespaces', parts: ['namespaces'] });
  check('GET', '/api/v1/namespaces/NS', { ...core, verb: 'get', namespace: 'NS', resource: 'namespaces', name: 'NS', parts: ['namespaces', 'NS'] });
  check('PUT', '/api/v1/namespaces/NS/status', {
    ...core,
    verb: 'update',
    namespace: 'NS',
    resource: 'namespaces',
    name: 'NS',
    subresource: 'status',
    parts: ['namespaces', 'NS', 'status'],
  });
  check('PUT', '/api/v1/namespaces/NS/finalize', {
    ...core,
    verb: 'update',
    namespace: 'NS',
    resource: 'namespaces',
    name: 'NS',
    subresource: 'finalize',
    parts: ['namespaces', 'NS', 'finalize'],
  });
});

test('cluster-scoped paths have no namespace', () => {
  check('GET', '/api/v1/nodes/N/proxy/some/path', {
    ...core,
    verb: 'get',
    resource: 'nodes',
    name: 'N',
    subresource: 'proxy',
    parts: ['nodes', 'N', 'proxy', 'some', 'path'],
    connect: true,
  });
  check('DELETE', '/apis/rbac.authorization.k8s.io/v1/clusterroles/admin', {
    isResourceRequest: true,
    apiPrefix: 'apis',
    apiGroup: 'rbac.authorization.k8s.io',
    apiVersion: 'v1',
    verb: 'delete',
    resource: 'clusterroles',
    name: 'admin',
    parts: ['clusterroles', 'admin'],
  });
});

test('a request across all namespaces is a namespaced resource with an empty namespace', () => {
  check('GET', '/api/v1/pods?watch=true', { ...core, verb: 'watch', resource: 'pods', parts: ['pods'] });
});

test('exec, attach and portforward keep the method verb, as the API server does, and are marked connect', () => {
  for (const sub of ['exec', 'attach', 'portforward']) {
    const base = { ...core, namespace: 'ns', resource: 'pods', name: 'web-0', subresource: sub, parts: ['pods', 'web-0', sub], connect: true };
    check('POST', `/api/v1/namespaces/ns/pods/web-0/${sub}?command=sh&stdin=true`, { ...base, verb: 'create' });
    check('GET', `/api/v1/namespaces/ns/pods/web-0/${sub}?command=sh`, { ...base, verb: 'get' });
  }
  assert.equal(requestInfo('GET', '/api/v1/namespaces/ns/pods/web-0/log').connect, false);
});

test('discovery paths are non-resource gets', () => {
  for (const p of ['/api', '/api/', '/api/v1', '/apis', '/apis/', '/apis/apps', '/apis/apps/v1', '/apis/apps/v1/']) {
    check('GET', p, { verb: 'get' });
  }
});

test('paths outside /api and /apis are non-resource with the lowercased method as verb', () => {
  check('GET', '/version', { path: '/version', verb: 'get' });
  check('GET', '/healthz?verbose', { path: '/healthz', verb: 'get' });
  check('GET', '/openapi/v3', { path: '/openapi/v3', verb: 'get' });
  check('GET', '/openapi/v3/apis/apps/v1', { path: '/openapi/v3/apis/apps/v1', verb: 'get' });
  check('POST', '/logs/x', { path: '/logs/x', verb: 'post' });
  check('HEAD', '/', { path: '/', verb: 'head' });
  check('OPTIONS', '*', { path: '*', verb: 'options' });
});

test('leading and trailing slashes are trimmed; empty inner segments are kept', () => {
  check('GET', '//api/v1/pods//', { ...core, path: '//api/v1/pods//', verb: 'list', resource: 'pods', parts: ['pods'] });
  check('GET', '/api/v1/namespaces/ns/pods/', { ...core, verb: 'list', namespace: 'ns', resource: 'pods', parts: ['pods'] });
  // An empty namespace segment reads as a request across all namespaces.
  check('GET', '/api/v1/namespaces//pods', { ...core, verb: 'list', resource: 'pods', parts: ['pods'] });
  check('GET', '/api//v1/pods', { ...core, apiVersion: '', verb: 'get', resource: 'v1', name: 'pods', parts: ['v1', 'pods'] });
});

test('the path is percent-decoded before it is split, as Go decodes URL.Path', () => {
  check('GET', '/api/v1/namespaces/n%73/s%65crets', {
    ...core,
    path: '/api/v1/namespaces/ns/secrets',
    verb: 'list',
    namespace: 'ns',
    resource: 'secrets',
    parts: ['secrets'],
  });
  check('GET', '/api/v1/namespaces/a%2Fb/pods', {
    ...core,
    path: '/api/v1/namespaces/a/b/pods',
    verb: 'get',
    namespace: 'a',
    resource: 'b',
    name: 'pods',
    parts: ['b', 'pods'],
  });
  assert.equal(requestInfo('GET', '/api/v1/namespaces/ns/configmaps/%C3%A9t%C3%A9').name, 'été');
  assert.equal(requestInfo('GET', '/api/v1/namespaces/ns/configmaps/a+b').name, 'a+b', "'+' is not a space in a path");
});

test('malformed inputs never throw', () => {
  const targets = [
    '',
    '/',
    '?',
    '??',
    '/apis/',
    '%',
    '%zz',
    '/api/v1/namespaces/%zz/pods',
    '/api/v1/%E0%A4%A',
    '/api/v1/pods/%FF%FE',
    `/api/v1/${'x/'.repeat(100_000)}`,
    `/api/v1/namespaces/ns/pods?${'a=1&'.repeat(50_000)}`,
    '/api/v1/pods?fieldSelector=%',
    '/api/v1/pods?fieldSelector=\\\\\\',
    'http://host:6443/api/v1/pods?watch=1',
    'https://',
    'no-slash',
    '/api/v1/watch/',
    '/api/v1/proxy',
  ];
  for (const method of ['GET', 'POST', 'DELETE', 'BREW', '']) {
    for (const t of targets) assert.doesNotThrow(() => requestInfo(method, t), `${method} ${t.slice(0, 40)}`);
  }
  check('GET', '/api/v1/namespaces/%zz/pods', {
    ...core,
    path: '/api/v1/namespaces/%zz/pods',
    verb: 'list',
    namespace: '%zz',
    resource: 'pods',
    parts: ['pods'],
  });
  assert.equal(requestInfo('GET', '/api/v1/pods/%FF').name, '\uFFFD');
  assert.equal(requestInfo('GET', `/api/v1/${'x/'.repeat(100_000)}`).parts.length, 100_000);
});

test('an absolute-form target is resolved from its path', () => {
  check('GET', 'https://10.0.0.1:6443/api/v1/namespaces/ns/pods?watch=1', {
    ...core,
    path: '/api/v1/namespaces/ns/pods',
    verb: 'watch',
    namespace: 'ns',
    resource: 'pods',
    parts: ['pods'],
  });
  check('GET', 'http://host', { path: '/', verb: 'get' });
});
