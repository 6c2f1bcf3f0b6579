/**
 * Queue definitions for the local Service Bus broker, read from a JSON file shaped like the official
 * Service Bus emulator's `Config.json` (`UserConfig.Namespaces[].Queues[]`), so one file serves both.
 */
import { readFileSync } from 'node:fs';

export interface QueueOptions {
  name: string;
  lockDurationInMs: number;
  maxDeliveryCount: number;
  requiresSession: boolean;
  requiresDuplicateDetection: boolean;
  duplicateDetectionWindowInMs: number;
  deadLetteringOnMessageExpiration: boolean;
  defaultMessageTimeToLiveInMs: number;
  maxMessageSizeInBytes: number;
}

export const QUEUE_DEFAULTS: Omit<QueueOptions, 'name'> = {
  lockDurationInMs: 60_000,
  maxDeliveryCount: 10,
  requiresSession: false,
  requiresDuplicateDetection: false,
  duplicateDetectionWindowInMs: 10 * 60_000,
  deadLetteringOnMessageExpiration: false,
  defaultMessageTimeToLiveInMs: 14 * 24 * 3600_000,
  maxMessageSizeInBytes: 256 * 1024,
};

interface EmulatorQueue {
  Name: string;
  Properties?: {
    LockDuration?: string;
    MaxDeliveryCount?: number;
    RequiresSession?: boolean;
    RequiresDuplicateDetection?: boolean;
    DuplicateDetectionHistoryTimeWindow?: string;
    DeadLetteringOnMessageExpiration?: boolean;
    DefaultMessageTimeToLive?: string;
    MaxMessageSizeInKilobytes?: number;
  };
}

/** Parses the emulator's Config.json content into queue options (first namespace). */
export function parseEmulatorConfig(json: unknown): QueueOptions[] {
  const namespaces = (json as { UserConfig?: { Namespaces?: Array<{ Queues?: EmulatorQueue[] }> } })?.UserConfig?.Namespaces;
  if (!Array.isArray(namespaces) || namespaces.length === 0) throw new Error('Config.json: UserConfig.Namespaces[] is missing');
  return (namespaces[0]!.Queues ?? []).map((q) => {
    if (!q.Name) throw new Error('Config.json: a queue has no Name');
    const p = q.Properties ?? {};
    return {
      name: q.Name,
      lockDurationInMs: p.LockDuration ? parseIsoDuration(p.LockDuration) : QUEUE_DEFAULTS.lockDurationInMs,
      maxDeliveryCount: p.MaxDeliveryCount ?? QUEUE_DEFAULTS.maxDeliveryCount,
      requiresSession: p.RequiresSession ?? false,
      requiresDuplicateDetection: p.RequiresDuplicateDetection ?? false,
      duplicateDetectionWindowInMs: p.DuplicateDetectionHistoryTimeWindow
        ? parseIsoDuration(p.DuplicateDetectionHistoryTimeWindow)
        : QUEUE_DEFAULTS.duplicateDetectionWindowInMs,
      deadLetteringOnMessageExpiration: p.DeadLetteringOnMessageExpiration ?? false,
      defaultMessageTimeToLiveInMs: p.DefaultMessageTimeToLive ? parseIsoDuration(p.DefaultMessageTimeToLive) : QUEUE_DEFAULTS.defaultMessageTimeToLiveInMs,
      maxMessageSizeInBytes: (p.MaxMessageSizeInKilobytes ?? 256) * 1024,
    };
  });
}

export function loadEmulatorConfig(path: string): QueueOptions[] {
  return parseEmulatorConfig(JSON.parse(readFileSync(path, 'utf8')));
}

/** ISO 8601 durations as Service Bus writes them: `PT1M`, `PT20S`, `P14D`, `PT0.5S`, `P1DT2H`. */
export function parseIsoDuration(value: string): number {
  const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(value.trim());
  if (!match || value.trim() === 'P' || value.trim().endsWith('T')) throw new Error(`Not an ISO 8601 duration: ${value}`);
  const [, d, h, m, s] = match;
  return Math.round(((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(m ?? 0)) * 60_000 + Number(s ?? 0) * 1000);
}
