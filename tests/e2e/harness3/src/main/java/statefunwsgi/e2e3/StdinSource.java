package statefunwsgi.e2e3;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.functions.source.RichSourceFunction;

/**
 * The e2e ingress: one {@link E2eMessage} per line of standard input.
 *
 * <p>Non-parallel. Checkpoints the index of the next line, so after a failure Flink restores it
 * and the lines not covered by the last checkpoint are emitted again (at-least-once towards the
 * functions; their state is restored from the same checkpoint). Never finishes: at EOF it idles.
 * Malformed lines are reported on stderr and skipped.
 *
 * <p>Prints {@code E2E-HARNESS RUNNING attempt=N stdin-offset=K} when the job (re)starts and {@code
 * E2E-HARNESS CHECKPOINT id=N stdin-offset=K} when a checkpoint completes: a restart restores the
 * state of the last such checkpoint and replays stdin from its offset.
 */
public final class StdinSource extends RichSourceFunction<E2eMessage>
    implements CheckpointedFunction, CheckpointListener {
  private static final long serialVersionUID = 1L;

  private transient ListState<Long> offsetState;
  private volatile long offset;
  private volatile boolean running = true;
  private transient Map<Long, Long> snapshotOffsets;

  @Override
  public void initializeState(FunctionInitializationContext context) throws Exception {
    offsetState =
        context
            .getOperatorStateStore()
            .getListState(new ListStateDescriptor<>("stdin-offset", Types.LONG));
    snapshotOffsets = new ConcurrentHashMap<>();
    offset = 0;
    if (context.isRestored()) {
      for (Long o : offsetState.get()) {
        offset = o;
      }
    }
  }

  @Override
  public void snapshotState(FunctionSnapshotContext context) throws Exception {
    offsetState.clear();
    offsetState.add(offset);
    snapshotOffsets.put(context.getCheckpointId(), offset);
  }

  @Override
  public void notifyCheckpointComplete(long checkpointId) {
    Long snapshotOffset = snapshotOffsets.remove(checkpointId);
    snapshotOffsets.keySet().removeIf(id -> id < checkpointId); // subsumed
    System.err.println(
        "E2E-HARNESS CHECKPOINT id=" + checkpointId + " stdin-offset="
            + (snapshotOffset == null ? -1 : snapshotOffset));
  }

  @Override
  public void run(SourceContext<E2eMessage> ctx) throws Exception {
    StdinLines.startReader();
    System.err.println(
        "E2E-HARNESS RUNNING attempt="
            + getRuntimeContext().getAttemptNumber()
            + " stdin-offset="
            + offset);
    while (running) {
      String line = StdinLines.await(offset, 200);
      if (line == null) {
        continue;
      }
      E2eMessage message = null;
      if (!line.trim().isEmpty()) {
        try {
          message = E2eMessage.parse(line);
        } catch (IllegalArgumentException e) {
          System.err.println("E2E-HARNESS skipping bad stdin line " + offset + ": " + e.getMessage());
        }
      }
      synchronized (ctx.getCheckpointLock()) {
        if (message != null) {
          ctx.collect(message);
        }
        offset++;
      }
    }
  }

  @Override
  public void cancel() {
    running = false;
  }
}
