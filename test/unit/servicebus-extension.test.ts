/**
 * `syncEntity` uses the Service Bus SDK binding: `@azure/functions-extensions-servicebus` registers a client factory
 * that `@azure/functions` looks up when a message arrives. Both must share one `@azure/functions-extensions-base`
 * (the registry is a per-copy singleton); the extension asks for 0.2.x while `@azure/functions` pins 0.3.0, so
 * package.json overrides it. Without that, the real host fails every message ("Unable to create client").
 */
import { dirname } from 'node:path';

test('the Service Bus extension registers its client factory where @azure/functions looks for it', () => {
  require('@azure/functions-extensions-servicebus');
  const base = require(require.resolve('@azure/functions-extensions-base', { paths: [dirname(require.resolve('@azure/functions'))] })) as {
    ResourceFactoryResolver: { getInstance(): { hasResourceFactory(type: string): boolean } };
  };
  expect(base.ResourceFactoryResolver.getInstance().hasResourceFactory('AzureServiceBusReceivedMessage')).toBe(true);
});
