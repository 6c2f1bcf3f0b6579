/**
 * The module's tables, in the catalog plugin's database: the last snapshot of every entity's uid and etag, the
 * per-endpoint outbox of events not yet delivered, and a little state. Migrations run at start-up (their own
 * migrations table, so they never touch the catalog's).
 */
import type { Knex } from 'knex';

export const TABLES = {
  snapshot: 'catalog_change_events_snapshot',
  outbox: 'catalog_change_events_outbox',
  endpoints: 'catalog_change_events_endpoints',
  state: 'catalog_change_events_state',
} as const;

const MIGRATIONS_TABLE = 'catalog_change_events_knex_migrations';

const migrations: Migrations = {
  '20261128_01_init': {
    async up(knex) {
      await knex.schema.createTable(TABLES.snapshot, (table) => {
        table.string('entity_ref', 512).primary().notNullable().comment('lower-cased kind:namespace/name');
        table.string('display_ref', 512).notNullable();
        table.string('uid', 128).nullable();
        table.string('etag', 256).nullable();
      });
      await knex.schema.createTable(TABLES.outbox, (table) => {
        table.bigIncrements('id').primary();
        table.string('endpoint', 100).notNullable();
        table.string('event_id', 128).notNullable();
        table.string('entity_ref', 512).notNullable();
        table.text('payload').notNullable().comment('the CloudEvent, JSON');
        table.bigInteger('created_at').notNullable().comment('epoch milliseconds');
        table.index(['endpoint', 'id'], 'catalog_change_events_outbox_endpoint_idx');
      });
      await knex.schema.createTable(TABLES.endpoints, (table) => {
        table.string('endpoint', 100).primary();
        table.integer('failures').notNullable().defaultTo(0);
        table.bigInteger('next_attempt_at').notNullable().defaultTo(0);
        table.text('last_error').nullable();
      });
      await knex.schema.createTable(TABLES.state, (table) => {
        table.string('key', 100).primary();
        table.text('value').notNullable();
      });
    },
    async down(knex) {
      for (const table of Object.values(TABLES)) await knex.schema.dropTableIfExists(table);
    },
  },
};

export async function applyMigrations(knex: Knex): Promise<void> {
  await applyKnexMigrations(knex, MIGRATIONS_TABLE, migrations);
}

/** A module's migrations, by name (applied in name order). */
export type Migrations = Record<string, { up(knex: Knex): Promise<void>; down(knex: Knex): Promise<void> }>;

/** Applies `migrations` not yet recorded in the module's own `migrationsTable` (never the catalog's). */
export async function applyKnexMigrations(knex: Knex, migrationsTable: string, migrations: Migrations): Promise<void> {
  await knex.migrate.latest({
    tableName: migrationsTable,
    migrationSource: {
      getMigrations: () => Promise.resolve(Object.keys(migrations).sort()),
      getMigrationName: (name: string) => name,
      getMigration: (name: string) => Promise.resolve(migrations[name]!),
    },
  });
}

export interface SnapshotRow {
  entity_ref: string;
  display_ref: string;
  uid: string | null;
  etag: string | null;
}

export interface OutboxRow {
  id: number;
  endpoint: string;
  event_id: string;
  entity_ref: string;
  payload: string;
  created_at: number;
}

export interface EndpointRow {
  endpoint: string;
  failures: number;
  next_attempt_at: number;
  last_error: string | null;
}

/** Inserts in chunks small enough for every database Backstage supports. */
export async function insertChunked<T extends object>(db: Knex | Knex.Transaction, table: string, rows: readonly T[], size = 100): Promise<void> {
  for (let i = 0; i < rows.length; i += size) await db(table).insert(rows.slice(i, i + size));
}
