/**
 * The provider's table, in the catalog plugin's database: per provider, the change-feed continuation up to which every
 * change is in the catalog, and when the last full mutation was applied — so that a restart resumes where the last
 * run stopped and loses nothing. Its migrations have their own table (they never touch the catalog's).
 */
import type { Knex } from 'knex';
import { applyKnexMigrations, type Migrations } from '../store';

export const STATE_TABLE = 'catalog_cosmos_authored_state';
const MIGRATIONS_TABLE = 'catalog_cosmos_authored_knex_migrations';

const migrations: Migrations = {
  '20261202_01_init': {
    async up(knex) {
      await knex.schema.createTable(STATE_TABLE, (table) => {
        table.string('provider', 200).primary().notNullable();
        table.text('continuation').nullable().comment('the change-feed continuation token applied up to');
        table.bigInteger('last_full_at').nullable().comment('epoch milliseconds of the last full mutation');
        table.bigInteger('updated_at').notNullable().comment('epoch milliseconds');
      });
    },
    async down(knex) {
      await knex.schema.dropTableIfExists(STATE_TABLE);
    },
  },
};

export async function applyAuthoredMigrations(knex: Knex): Promise<void> {
  await applyKnexMigrations(knex, MIGRATIONS_TABLE, migrations);
}

export interface ProviderState {
  continuation: string | undefined;
  lastFullAt: number | undefined;
}

export class ProviderStateStore {
  constructor(
    private readonly db: Knex,
    private readonly provider: string,
  ) {}

  async read(): Promise<ProviderState> {
    const row = (await this.db(STATE_TABLE).where({ provider: this.provider }).first()) as { continuation: string | null; last_full_at: number | string | null } | undefined;
    return { continuation: row?.continuation ?? undefined, lastFullAt: row?.last_full_at == null ? undefined : Number(row.last_full_at) };
  }

  /** Records what was applied: a continuation, a full mutation's time, or both. */
  async write(update: { continuation?: string; lastFullAt?: number }, now = Date.now()): Promise<void> {
    const values = {
      ...(update.continuation !== undefined && { continuation: update.continuation }),
      ...(update.lastFullAt !== undefined && { last_full_at: update.lastFullAt }),
      updated_at: now,
    };
    await this.db(STATE_TABLE)
      .insert({ provider: this.provider, continuation: null, last_full_at: null, ...values })
      .onConflict('provider')
      .merge(Object.keys(values));
  }
}
