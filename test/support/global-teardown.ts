import type { LocalStack } from '../../local/stack';

export default async function globalTeardown(): Promise<void> {
  await ((globalThis as Record<string, unknown>).__LOCAL_STACK__ as LocalStack | undefined)?.stop();
}
