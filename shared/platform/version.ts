/** The service version, reported by /api/health and in the User-Agent. Kept equal to package.json by a unit test. */
export const VERSION = '0.1.0';
