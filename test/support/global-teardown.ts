export default async function globalTeardown(): Promise<void> {
  const standins = (globalThis as Record<string, unknown>).__STANDINS__ as
    | { identity: { close(): Promise<void> }; cosmos: { close(): Promise<void> } }
    | undefined;
  await standins?.cosmos.close();
  await standins?.identity.close();
}
