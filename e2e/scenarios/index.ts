// Every scenario, in the order `pnpm e2e` runs them (chaos last: it kills the gateway).
import type { Scenario } from '../harness/scenario.ts';
import { chaosScenarios } from './chaos.ts';
import { chartScenarios } from './charts.ts';
import { clientNodeScenarios } from './client-node.ts';
import { doctorScenarios } from './doctor.ts';
import { fleetScenarios } from './fleet.ts';
import { jsonProtocolScenarios } from './json-protocol.ts';
import { olderKubectlScenarios } from './older-kubectl.ts';
import { helmScenarios, rbacScenarios } from './rbac-helm.ts';
import { readScenarios } from './read.ts';
import { streamScenarios } from './streams.ts';
import { trustScenarios } from './trust.ts';
import { watchScenarios } from './watch.ts';
import { writeScenarios } from './write.ts';

export const allScenarios: Scenario[] = [
  ...readScenarios,
  ...writeScenarios,
  ...watchScenarios,
  ...streamScenarios,
  ...rbacScenarios,
  ...trustScenarios,
  ...helmScenarios,
  ...chartScenarios,
  ...clientNodeScenarios,
  ...jsonProtocolScenarios,
  ...olderKubectlScenarios,
  ...doctorScenarios,
  ...fleetScenarios,
  ...chaosScenarios,
];
