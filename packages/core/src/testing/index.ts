export { FakeConnection, FakeConnectionManager } from './fake-connection-manager'
export type { FakeFault, FakeManagerOptions } from './fake-connection-manager'
export { defineConformanceSuite } from './conformance'
export type { ConformanceSetup, ConformanceTestApi } from './conformance'
