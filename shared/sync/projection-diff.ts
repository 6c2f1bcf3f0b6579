/**
 * A reconcile's diff of the catalog's projection against the mirror's index, made while both stream in. An entity
 * whose two halves agree (the mirror holds the catalog's uid and etag, not as a tombstone) is counted as soon as its
 * second half arrives, and only its id and etag are kept; so a run holds what differs and whatever one stream has read
 * ahead of the other — not the whole of both, as two maps diffed at the end would. Pure logic; the reconciler feeds it.
 */
import type { CatalogProjectionItem } from './catalog-reader';
import type { MirrorIndexItem } from './entity-store';

/** The mirror holds this version of the catalog's entity. */
const agrees = (catalog: CatalogProjectionItem, mirrored: MirrorIndexItem): boolean =>
  !mirrored.deleted && mirrored.sourceEtag === (catalog.etag ?? null) && mirrored.uid === (catalog.uid ?? null);

export class ProjectionDiff {
  /** Catalog items (in scope) without an agreeing mirror item so far. */
  private readonly catalog = new Map<string, CatalogProjectionItem>();
  /** Mirror items without an agreeing catalog item so far. */
  private readonly mirror = new Map<string, MirrorIndexItem>();
  /** Ids whose halves agreed, with the catalog etag they agreed on (to tell a repeated item from a changed one). */
  private readonly matched = new Map<string, string | undefined>();
  /**
   * Once the mirror's index is complete ({@link completeMirror}): catalog items set in {@link catalog} since the last
   * {@link takeToSync}. (Not kept before: an item that agrees later would be held here for nothing.)
   */
  private fresh: CatalogProjectionItem[] | undefined;

  /** An in-scope item of the catalog's projection. */
  addCatalog(item: CatalogProjectionItem): void {
    const id = item.id;
    if (this.matched.has(id)) {
      // The same entity again (a cursor can repeat one): the same version changes nothing; a newer one must be synced.
      if (this.matched.get(id) === item.etag) return;
      this.matched.delete(id);
      this.catalog.set(id, item);
      this.fresh?.push(item);
      return;
    }
    // The same version again: nothing new to sync (and it may have been handed out already).
    if (this.catalog.get(id)?.etag === item.etag) return;
    const mirrored = this.mirror.get(id);
    if (mirrored && agrees(item, mirrored)) {
      this.mirror.delete(id);
      this.catalog.delete(id);
      this.matched.set(id, item.etag);
    } else {
      this.catalog.set(id, item);
      this.fresh?.push(item);
    }
  }

  /** An item of the mirror's index (tombstones included). */
  addMirror(item: MirrorIndexItem): void {
    const id = item.id;
    if (this.matched.has(id)) return;
    const inCatalog = this.catalog.get(id);
    if (inCatalog && agrees(inCatalog, item)) {
      this.catalog.delete(id);
      this.matched.set(id, inCatalog.etag);
    } else {
      this.mirror.set(id, item);
    }
  }

  /** Entities whose mirror document holds the catalog's version. */
  get unchanged(): number {
    return this.matched.size;
  }

  /** Distinct in-scope entities the catalog has. */
  get catalogCount(): number {
    return this.catalog.size + this.matched.size;
  }

  /** Distinct mirror documents that are not tombstones. */
  get liveMirrorCount(): number {
    let live = this.matched.size;
    for (const item of this.mirror.values()) if (!item.deleted) live += 1;
    return live;
  }

  /**
   * Marks the mirror's index as read whole and hands out what the catalog has to sync so far — items the mirror does
   * not hold as they are: new, changed, or tombstoned in the mirror. Each is final now (no mirror item can still agree
   * with it), so a run can sync it while the catalog still streams in.
   */
  completeMirror(): CatalogProjectionItem[] {
    this.fresh = [];
    return [...this.catalog.values()];
  }

  /**
   * After {@link completeMirror}: the catalog items to sync that arrived since the last hand-out. An entity handed out
   * and then seen again in a newer version is handed out again; the same version is not.
   */
  takeToSync(): CatalogProjectionItem[] {
    if (!this.fresh) throw new Error('takeToSync before completeMirror: an item handed out could still agree with the mirror');
    const out = this.fresh.filter((item) => this.catalog.get(item.id) === item);
    this.fresh = [];
    return out;
  }

  /** Live mirror documents the in-scope catalog does not have. */
  departing(): MirrorIndexItem[] {
    return [...this.mirror.values()].filter((m) => !m.deleted && !this.catalog.has(m.id));
  }

  /** What the mirror holds of the entities still to sync or tombstone (their writes are conditional on it). */
  get mirrored(): ReadonlyMap<string, MirrorIndexItem> {
    return this.mirror;
  }
}
