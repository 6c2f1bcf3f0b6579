// Applies the reviewed patches in patches/ to the local stand-ins' packages (the Cosmos emulator's change feed).
// The stand-ins are development dependencies: a production install (--omit=dev) has neither them nor
// patch-package, and skips this step.
const { spawnSync } = require('node:child_process');

let bin;
try {
  bin = require.resolve('patch-package/dist/index.js');
} catch {
  console.log('postinstall: patch-package is not installed (production install); no patches to apply');
  process.exit(0);
}
const result = spawnSync(process.execPath, [bin, '--error-on-fail'], { stdio: 'inherit' });
process.exit(result.status ?? 1);
