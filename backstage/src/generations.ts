/**
 * Change detection in O(changes): the catalog's publication generations.
 *
 * Since `@backstage/plugin-catalog-backend` 4.0.3 every stitched (published) entity carries a `generation` in
 * `final_entities`, taken from `catalog_generation_counter` when the stitch commits — at commit time on PostgreSQL (a
 * deferred trigger), inside the stitch's transaction elsewhere — so generations become visible in increasing order
 * and "every row with a generation above the last one seen" is exactly what was published since. Upstream describes
 * it as groundwork for change tracking; it is not a public API. This module reads it from the catalog's own
 * database (a catalog module shares it) and therefore:
 *
 * - detects it at start-up: the table, its columns and the counter must be there, else the engine stays on the
 *   public-API diff;
 * - never trusts it blindly: a query that fails (a schema that moved on) switches the engine back to the diff, with
 *   a warning naming the error;
 * - cannot see deletions (a deleted entity's row is gone): {@link CatalogGenerations.departed} finds them by joining
 *   the module's snapshot against `final_entities` in the database — no rows leave it unless something was deleted —
 *   and the engine's full diff, at a slower cadence, is the safety net.
 */
import type { Knex } from 'knex';

const FINAL_ENTITIES = 'final_entities';
const COUNTER = 'catalog_generation_counter';

/** One published entity: its generation and its stitched body (JSON), null when not stitched yet. */
export interface PublishedRow {
  generation: string;
  entityRef: string;
  finalEntity: string | null;
}

export class CatalogGenerations {
  constructor(private readonly db: Knex) {}

  /** Whether the catalog's database has publication generations, with every column this reader uses. */
  async available(): Promise<boolean> {
    // A fresh schema builder per question: one builder accumulates its statements and answers for the first.
    if (!(await this.db.schema.hasTable(FINAL_ENTITIES)) || !(await this.db.schema.hasTable(COUNTER))) return false;
    for (const column of ['generation', 'entity_ref', 'final_entity']) if (!(await this.db.schema.hasColumn(FINAL_ENTITIES, column))) return false;
    return true;
  }

  /** The last generation handed out (the counter); a diff that starts after reading it misses nothing published since. */
  async current(): Promise<string> {
    const row = await this.db<{ id: number; generation: string | number }>(COUNTER).where({ id: 1 }).first('generation');
    return String(row?.generation ?? 0);
  }

  /** Up to `limit` entities published after generation `after`, oldest first. */
  async publishedAfter(after: string, limit: number): Promise<PublishedRow[]> {
    const rows = (await this.db(FINAL_ENTITIES)
      .select('generation', 'entity_ref', 'final_entity')
      .whereNotNull('generation')
      .andWhere('generation', '>', asBigInt(after))
      .orderBy('generation', 'asc')
      .limit(limit)) as Array<{ generation: string | number; entity_ref: string; final_entity: string | null }>;
    return rows.map((row) => ({ generation: String(row.generation), entityRef: row.entity_ref, finalEntity: row.final_entity }));
  }

  /**
   * The rows of `snapshotTable` (the module's, keyed by the lower-case `kind:namespace/name` the catalog also keys
   * `final_entities.entity_ref` by) whose entity the catalog no longer has: an anti-join on the catalog's unique
   * index, evaluated in the database.
   */
  async departed(snapshotTable: string): Promise<DepartedRow[]> {
    return this.db<DepartedRow>(snapshotTable)
      .select(`${snapshotTable}.entity_ref`, `${snapshotTable}.display_ref`, `${snapshotTable}.uid`)
      .whereNotExists((sub) => {
        void sub.select(this.db.raw('1')).from(FINAL_ENTITIES).whereRaw('??.?? = ??.??', [FINAL_ENTITIES, 'entity_ref', snapshotTable, 'entity_ref']);
      });
  }
}

/** A snapshot row whose entity the catalog no longer has. */
export interface DepartedRow {
  entity_ref: string;
  display_ref: string;
  uid: string | null;
}

/** A generation as the driver binds it best: a number while exact, the decimal string beyond. */
function asBigInt(value: string): number | string {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value;
}
