import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codeClass, kubeVerb } from '../src/kube/verb.ts';

test('the verb label follows method, watch query and path shape, from a fixed set', () => {
  const cases: Array<[string, string, boolean, string]> = [
    ['GET', '/api/v1/namespaces/default/pods', false, 'list'],
    ['GET', '/api/v1/namespaces/default/pods/web-0', false, 'get'],
    ['GET', '/api/v1/namespaces/default/pods?watch=1&resourceVersion=5', false, 'watch'],
    ['GET', '/api/v1/watch/namespaces/default/pods', false, 'watch'],
    ['GET', '/apis/apps/v1/deployments?watch=true', false, 'watch'],
    ['GET', '/api/v1/namespaces', false, 'list'],
    ['GET', '/api/v1/namespaces/default', false, 'get'],
    ['GET', '/version', false, 'get'],
    ['GET', '/api/v1/namespaces/default/pods/web-0/log?follow=true', false, 'get'],
    ['POST', '/api/v1/namespaces/default/configmaps', false, 'create'],
    ['PUT', '/api/v1/namespaces/default/configmaps/a', false, 'update'],
    ['PATCH', '/apis/apps/v1/namespaces/default/deployments/d', false, 'patch'],
    ['DELETE', '/api/v1/namespaces/default/pods/web-0', false, 'delete'],
    ['DELETE', '/api/v1/namespaces/default/pods', false, 'deletecollection'],
    ['HEAD', '/version', false, 'head'],
    ['OPTIONS', '/api', false, 'options'],
    ['POST', '/api/v1/namespaces/default/pods/web-0/exec?command=sh', false, 'connect'],
    ['GET', '/api/v1/namespaces/default/pods/web-0/portforward', true, 'connect'],
    ['TRACE', '/x', false, 'other'],
  ];
  for (const [method, path, upgrade, verb] of cases) assert.equal(kubeVerb(method, path, upgrade), verb, `${method} ${path}`);
  assert.deepEqual([101, 200, 304, 404, 503, undefined].map(codeClass), ['1xx', '2xx', '3xx', '4xx', '5xx', 'aborted']);
});
