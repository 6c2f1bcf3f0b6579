/**
 * Backstage catalog module: publishes catalog entity changes as authenticated CloudEvents.
 *
 * @packageDocumentation
 */
export { catalogModuleChangeEvents as default, catalogModuleChangeEvents, TASK_ID } from './module';
export { ChangeEventsEngine, EVENT_TYPES, type CatalogEvent, type DiffResult, type DeliveryResult } from './ChangeEventsEngine';
export { readChangeEventsSettings, ChangeEventsConfigError, type ChangeEventsSettings, type EndpointSettings } from './config';
export { EndpointClient, createEndpointClients } from './delivery';
export { createMetrics, type ChangeEventsMetrics } from './metrics';
export { applyMigrations, TABLES } from './store';
