/**
 * The first import of ./telemetry-scenario.ts. With the sources (no TEST_APP_BUNDLE), Application Insights starts
 * here, as in a Functions worker: before anything loads the Azure SDKs. With the bundle, the bundle starts its own
 * copy of the distro when the dev host loads it, and nothing may start a second one.
 */
if (!process.env.TEST_APP_BUNDLE) {
  require('../../functions/lib/bootstrap');
}
