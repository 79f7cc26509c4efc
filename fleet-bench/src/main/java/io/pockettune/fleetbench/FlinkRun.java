package io.pockettune.fleetbench;

import io.pockettune.fleet.FleetJob;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.apache.flink.api.common.JobID;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.WebOptions;
import org.apache.flink.runtime.checkpoint.AbstractCheckpointStats;
import org.apache.flink.runtime.checkpoint.CompletedCheckpointStats;
import org.apache.flink.runtime.checkpoint.FailedCheckpointStats;
import org.apache.flink.runtime.checkpoint.SubtaskStateStats;
import org.apache.flink.runtime.checkpoint.TaskStateStats;
import org.apache.flink.runtime.executiongraph.ArchivedExecutionGraph;
import org.apache.flink.runtime.jobmaster.JobResult;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.graph.StreamGraph;

/**
 * One bounded run of the fleet job on a MiniCluster: the job exactly as {@link FleetJob#define}
 * builds it, submitted as a stream graph, timed from submission to the job's result, with the
 * checkpoints' statistics taken from the finished job's archived execution graph (the same figures
 * the REST API's {@code /jobs/<id>/checkpoints} gives). A checkpoint triggered while a bounded
 * job's tasks are finishing is declined ("task is closing") and counted as failed; the job's final
 * checkpoint, taken when every source has reached its end, is the last completed one.
 */
final class FlinkRun {
  /**
   * A completed checkpoint: full state size (every file it references), bytes it added, end-to-end
   * time (trigger to the last acknowledgement: mostly the barrier's wait behind the events queued
   * ahead of it), and the write time: the largest synchronous plus asynchronous part of any subtask,
   * which is what snapshotting the state itself cost.
   */
  record Checkpoint(long id, long stateBytes, long checkpointedBytes, long endToEndMillis, long writeMillis) {}

  /**
   * @param jobMillis        submission to the job's result, measured here
   * @param netRuntimeMillis the job's own runtime as its JobMaster reports it
   */
  record Result(long jobMillis, long netRuntimeMillis, String stateBackend, List<Checkpoint> checkpoints,
      int failedCheckpoints) {
    /** @return the newest completed checkpoint, or null if none completed */
    Checkpoint last() {
      return checkpoints.isEmpty() ? null : checkpoints.get(checkpoints.size() - 1);
    }
  }

  private FlinkRun() {}

  /** A MiniCluster of one TaskManager with {@code slots} slots, its REST endpoint on a free port. */
  static MiniCluster start(int slots) throws Exception {
    Configuration c = new Configuration();
    c.set(RestOptions.BIND_PORT, "0");
    // Every checkpoint of a run stays in the statistics, not only the newest 10.
    c.set(WebOptions.CHECKPOINTS_HISTORY_SIZE, 100_000);
    MiniCluster m = new MiniCluster(new MiniClusterConfiguration.Builder().setConfiguration(c)
        .setNumTaskManagers(1).setNumSlotsPerTaskManager(slots).build());
    m.start();
    return m;
  }

  static Result run(MiniCluster cluster, FleetJob.Settings s, String name) throws Exception {
    Configuration c = FleetJob.configuration(s);
    c.setString("restart-strategy.type", "none");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(c);
    env.setParallelism(s.parallelism());
    FleetJob.define(env, s, UnaryOperator.identity());
    StreamGraph graph = env.getStreamGraph();
    graph.setJobName(name);
    long started = System.nanoTime();
    JobID id = cluster.submitJob(graph).get(60, TimeUnit.SECONDS).getJobID();
    JobResult result = cluster.requestJobResult(id).get();
    long jobMillis = (System.nanoTime() - started) / 1_000_000;
    if (!result.isSuccess()) {
      Throwable cause = result.getSerializedThrowable()
          .map(t -> t.deserializeError(FlinkRun.class.getClassLoader())).orElse(null);
      throw new IllegalStateException("the fleet job " + name + " failed: " + result.getApplicationStatus(), cause);
    }
    ArchivedExecutionGraph g = cluster.getArchivedExecutionGraph(id).get(60, TimeUnit.SECONDS);
    List<Checkpoint> done = new ArrayList<>();
    int failed = 0;
    for (AbstractCheckpointStats cs : g.getCheckpointStatsSnapshot().getHistory().getCheckpoints()) {
      if (cs instanceof FailedCheckpointStats) {
        failed++;
      } else if (cs instanceof CompletedCheckpointStats cc) {
        long write = 0;
        for (TaskStateStats task : cc.getAllTaskStateStats()) {
          for (SubtaskStateStats sub : task.getSubtaskStats()) {
            if (sub != null) {
              write = Math.max(write, Math.max(0, sub.getSyncCheckpointDuration())
                  + Math.max(0, sub.getAsyncCheckpointDuration()));
            }
          }
        }
        done.add(new Checkpoint(cc.getCheckpointId(), cc.getStateSize(), cc.getCheckpointedSize(),
            cc.getEndToEndDuration(), write));
      }
    }
    done.sort(Comparator.comparingLong(Checkpoint::id));
    return new Result(jobMillis, result.getNetRuntime(), g.getStateBackendName().orElse("unknown"), done,
        failed);
  }
}
