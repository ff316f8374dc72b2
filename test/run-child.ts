// A training run in a child process, for the run-folder tests (not a test file itself):
//   node run-child.js crash <out> <operation> <resume-from> <stop-at-step>
//     resumes <resume-from> into <out> and kills itself (SIGKILL) just before <operation> of
//     the save ('none': no crash)
//   node run-child.js hold <out>
//     trains a long run in <out>, printing "started" once it holds the folder
import { runTraining } from '../lib/index.js';
import { setSaveOperationHook, type SaveOperation } from '../lib/train/run-checkpoints.js';
import { regressionTask } from './regression-task.js';

const [mode, out, operation, resumeFrom, stopAt] = process.argv.slice(2);
if (mode === 'crash') {
  setSaveOperationHook((op: SaveOperation) => {
    if (op === operation) process.kill(process.pid, 'SIGKILL');
  });
  const r = await runTraining(regressionTask, { out: out!, resume: resumeFrom!, stopAtStep: Number(stopAt), device: 'cpu' });
  r.model.dispose();
} else if (mode === 'hold') {
  const r = await runTraining(regressionTask, {
    recipe: { epochs: 100_000 }, out: out!, device: 'cpu',
    onEvent: (e) => e.type === 'start' && console.log('started'),
  });
  r.model.dispose();
} else {
  throw new Error(`run-child: unknown mode ${mode}`);
}
