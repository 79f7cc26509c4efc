package io.pockettune.fleet;

import io.pockettune.pipeline.TrajectoryEntry;
import io.pockettune.pipeline.UserTrainer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One user's training, keyed by user: the device's micro-batching and MeZO steps, with the user's
 * state in Flink's keyed state and the model shared by every user of the task slot.
 *
 * <h2>Order</h2>
 * A user's events can come from several topics and partitions, whose interleaving on arrival is
 * not repeatable. So events wait in keyed state until the watermark passes their time and then
 * train in {@link FleetEvent#TRAINING_ORDER} (event time, topic, partition, offset): what a user's
 * model becomes depends on the events alone, not on how they arrived, which is what makes a run
 * recovered from a checkpoint bit-identical to an uninterrupted one. An event that arrives behind
 * the watermark (later than the source's allowed out-of-orderness) trains at once, in arrival
 * order, and is counted ({@code lateEvents}).
 *
 * <h2>Batches</h2>
 * The device's triggers, on event time: a batch closes at {@code batch} examples, before an
 * example that would pass the token budget, or when the watermark reaches its first example's
 * time plus {@code maxWaitMillis} (an event-time timer), so a partial batch is not left waiting
 * for events that may never come. Events that cannot train are dead letters ({@code deadLetters})
 * and, for classification, unlabelled events are skipped ({@code unlabelled}), as on the device.
 *
 * <h2>State, per user</h2>
 * The waiting events, by time; the open batch (examples, its first and last times); the steps taken;
 * a snapshot of the user's trainable values every {@code snapshotEvery} steps and the trajectory
 * entries since it; and, unless turned off, every entry of the user's history (59 bytes a step), as
 * the device store keeps every step record. The values themselves live in a per-slot cache; after a
 * restore (or an eviction) they are rebuilt from the snapshot and the entries after it, and the
 * rebuilt values must match the last entry's fingerprint.
 *
 * <h2>Output</h2>
 * (user, encoded {@link TrajectoryEntry}) for every step, to the trajectory topic.
 */
final class UserTrainingFunction extends KeyedProcessFunction<String, FleetEvent, Tuple2<String, byte[]>> {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(UserTrainingFunction.class);
  private static final TypeInformation<byte[]> BYTES = PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;

  /** Open batch meta: first event time, last event time, tokens, examples. */
  private static final int OPENED = 0;
  private static final int LAST = 1;
  private static final int TOKENS = 2;
  private static final int COUNT = 3;

  private final FleetJob.Settings settings;

  private transient UserTrainer trainer;
  private transient Map<String, UserValues> cache;
  private transient int cacheEntries;
  private transient MapState<Long, List<FleetEvent>> waiting;
  private transient ListState<byte[]> openExamples;
  private transient ValueState<long[]> openMeta;
  private transient ValueState<Long> steps;
  private transient ValueState<byte[]> snapshot;
  private transient ListState<byte[]> sinceSnapshot;
  private transient ListState<byte[]> history;
  private transient Counter deadLetters;
  private transient Counter unlabelled;
  private transient Counter lateEvents;
  private transient Counter stepCounter;
  private transient Counter eventsTrained;
  private transient Counter rebuilds;

  UserTrainingFunction(FleetJob.Settings settings) {
    this.settings = settings;
  }

  /** A user's current values and the step they stand at. */
  private record UserValues(long step, float[] values) {}

  @Override
  public void open(OpenContext context) throws Exception {
    int subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
    Path work = Path.of(settings.workDir(), "slot-" + subtask);
    trainer = UserTrainer.open(settings.modelDir() == null ? null : Path.of(settings.modelDir()), work,
        settings.trainer());
    cacheEntries = (int) Math.max(1, Math.min(1 << 20, settings.cacheBytes() / Math.max(1L, 4L * trainer.size())));
    cache = new LinkedHashMap<>(16, 0.75f, true) {
      @Override
      protected boolean removeEldestEntry(Map.Entry<String, UserValues> eldest) {
        return size() > cacheEntries;
      }
    };
    waiting = getRuntimeContext().getMapState(new MapStateDescriptor<>("waiting", Types.LONG,
        Types.LIST(TypeInformation.of(FleetEvent.class))));
    openExamples = getRuntimeContext().getListState(new ListStateDescriptor<>("open-examples", BYTES));
    openMeta = getRuntimeContext().getState(new ValueStateDescriptor<>("open-meta",
        PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO));
    steps = getRuntimeContext().getState(new ValueStateDescriptor<>("steps", Types.LONG));
    snapshot = getRuntimeContext().getState(new ValueStateDescriptor<>("snapshot", BYTES));
    sinceSnapshot = getRuntimeContext().getListState(new ListStateDescriptor<>("since-snapshot", BYTES));
    history = getRuntimeContext().getListState(new ListStateDescriptor<>("history", BYTES));
    var metrics = getRuntimeContext().getMetricGroup();
    deadLetters = metrics.counter("deadLetters");
    unlabelled = metrics.counter("unlabelled");
    lateEvents = metrics.counter("lateEvents");
    stepCounter = metrics.counter("steps");
    eventsTrained = metrics.counter("eventsTrained");
    rebuilds = metrics.counter("valueRebuilds");
  }

  @Override
  public void close() throws Exception {
    if (trainer != null) {
      trainer.close();
      trainer = null;
    }
  }

  @Override
  public void processElement(FleetEvent e, Context ctx, Collector<Tuple2<String, byte[]>> out) throws Exception {
    if (e.timestamp <= ctx.timerService().currentWatermark()) {
      lateEvents.inc();
      train(ctx.getCurrentKey(), e, out);
      scheduleDeadline(ctx.timerService());
      return;
    }
    List<FleetEvent> at = waiting.get(e.timestamp);
    if (at == null) {
      at = new ArrayList<>(1);
    }
    at.add(e);
    waiting.put(e.timestamp, at);
    ctx.timerService().registerEventTimeTimer(e.timestamp);
  }

  @Override
  public void onTimer(long time, OnTimerContext ctx, Collector<Tuple2<String, byte[]>> out) throws Exception {
    String user = ctx.getCurrentKey();
    long[] meta = openMeta.value();
    if (meta != null && meta[COUNT] > 0 && settings.trainer().maxWaitMillis() != Long.MAX_VALUE
        && time - meta[OPENED] >= settings.trainer().maxWaitMillis()) {
      commit(user, out);
    }
    // Every waiting event registered a timer at its own time, and timers fire in time order, so
    // the events due now are exactly those waiting at this time.
    List<FleetEvent> due = waiting.get(time);
    if (due != null) {
      waiting.remove(time);
      due.sort(FleetEvent.TRAINING_ORDER);
      for (FleetEvent e : due) {
        train(user, e, out);
      }
    }
    scheduleDeadline(ctx.timerService());
  }

  /** Registers the open batch's max-wait timer (Flink keeps one timer per user and time). */
  private void scheduleDeadline(org.apache.flink.streaming.api.TimerService timers) throws Exception {
    long[] meta = openMeta.value();
    long wait = settings.trainer().maxWaitMillis();
    if (meta != null && meta[COUNT] > 0 && wait != Long.MAX_VALUE) {
      timers.registerEventTimeTimer(saturatedAdd(meta[OPENED], wait));
    }
  }

  private void train(String user, FleetEvent e, Collector<Tuple2<String, byte[]>> out) throws Exception {
    UserTrainer.Prepared p = trainer.prepare(e.value);
    if (p.unlabelled()) {
      unlabelled.inc();
      return;
    }
    if (!p.trains()) {
      deadLetters.inc();
      LOG.debug("{} of user {} cannot train: {}", e.position(), user, p.deadLetterReason());
      return;
    }
    long[] meta = openMeta.value();
    if (meta == null) {
      meta = new long[4];
    }
    long[] tokens = p.example().tokens();
    long wait = settings.trainer().maxWaitMillis();
    boolean expired = meta[COUNT] > 0 && wait != Long.MAX_VALUE && e.timestamp - meta[OPENED] >= wait;
    if (expired || !trainer.fits((int) meta[COUNT], meta[TOKENS], tokens)) {
      commit(user, out);
      meta = new long[4];
    }
    if (meta[COUNT] == 0) {
      meta[OPENED] = e.timestamp;
    }
    meta[LAST] = Math.max(meta[LAST], e.timestamp);
    meta[TOKENS] += tokens.length;
    meta[COUNT]++;
    openExamples.add(encode(p.example()));
    openMeta.update(meta);
    if (meta[COUNT] >= trainer.batch()) {
      commit(user, out);
    }
  }

  /** Trains the open batch as this user's next step(s), records them and publishes them. */
  private void commit(String user, Collector<Tuple2<String, byte[]>> out) throws Exception {
    long[] meta = openMeta.value();
    List<UserTrainer.Example> examples = new ArrayList<>();
    for (byte[] b : openExamples.get()) {
      examples.add(decode(b));
    }
    openExamples.clear();
    openMeta.clear();
    if (examples.isEmpty()) {
      return;
    }
    UserValues current = values(user);
    float[] values = current.values();
    List<TrajectoryEntry> entries = trainer.train(values, current.step(), examples, meta[LAST]);
    long step = entries.get(entries.size() - 1).record().step();
    boolean snap = false;
    for (TrajectoryEntry entry : entries) {
      byte[] encoded = entry.encode();
      sinceSnapshot.add(encoded);
      if (settings.keepHistory()) {
        history.add(encoded);
      }
      snap |= settings.snapshotEvery() > 0 && entry.record().step() % settings.snapshotEvery() == 0;
      out.collect(Tuple2.of(user, encoded));
    }
    steps.update(step);
    if (snap) {
      snapshot.update(encodeSnapshot(step, values));
      sinceSnapshot.clear();
    }
    cache.put(user, new UserValues(step, values));
    stepCounter.inc(entries.size());
    eventsTrained.inc(examples.size());
  }

  /** The user's values now: from the cache, else rebuilt from the snapshot and the steps after it. */
  private UserValues values(String user) throws Exception {
    Long done = steps.value();
    long step = done == null ? 0 : done;
    UserValues cached = cache.get(user);
    if (cached != null && cached.step() == step) {
      return cached;
    }
    rebuilds.inc();
    float[] values;
    long at;
    byte[] snap = snapshot.value();
    if (snap == null) {
      values = trainer.baseValues();
      at = 0;
    } else {
      ByteBuffer b = ByteBuffer.wrap(snap).order(ByteOrder.LITTLE_ENDIAN);
      at = b.getLong();
      values = new float[trainer.size()];
      b.asFloatBuffer().get(values);
    }
    TrajectoryEntry last = null;
    for (byte[] e : sinceSnapshot.get()) {
      TrajectoryEntry entry = TrajectoryEntry.decode(e);
      if (entry.record().step() <= at) {
        continue;
      }
      if (entry.record().step() != at + 1) {
        throw new IllegalStateException("the state of user " + user + " jumps from step " + at + " to "
            + entry.record().step() + ": the job's keyed state is damaged; restore from an earlier checkpoint");
      }
      trainer.replay(values, entry.record());
      at = entry.record().step();
      last = entry;
    }
    if (at != step) {
      throw new IllegalStateException("the state of user " + user + " holds steps up to " + at + " but counts " + step
          + ": the job's keyed state is damaged; restore from an earlier checkpoint");
    }
    if (last != null && UserTrainer.fingerprint(values) != last.fingerprint()) {
      throw new IllegalStateException("replaying the steps of user " + user + " up to step " + at
          + " did not reproduce the values it trained: the model package or kernel differs from the one the state was"
          + " trained with; run the job with the same --model");
    }
    UserValues rebuilt = new UserValues(at, values);
    cache.put(user, rebuilt);
    return rebuilt;
  }

  static byte[] encodeSnapshot(long step, float[] values) {
    ByteBuffer b = ByteBuffer.allocate(8 + 4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(step);
    b.asFloatBuffer().put(values);
    return b.array();
  }

  static byte[] encode(UserTrainer.Example e) {
    long[] t = e.tokens();
    ByteBuffer b = ByteBuffer.allocate(8 + 4 * t.length);
    b.putInt(e.label()).putInt(t.length);
    for (long id : t) {
      if (id < Integer.MIN_VALUE || id > Integer.MAX_VALUE) {
        throw new IllegalArgumentException("token id " + id + " does not fit the job's state encoding (32 bits)");
      }
      b.putInt((int) id);
    }
    return b.array();
  }

  static UserTrainer.Example decode(byte[] bytes) {
    ByteBuffer b = ByteBuffer.wrap(bytes);
    int label = b.getInt();
    long[] t = new long[b.getInt()];
    for (int i = 0; i < t.length; i++) {
      t[i] = b.getInt();
    }
    return new UserTrainer.Example(t, label);
  }

  private static long saturatedAdd(long a, long b) {
    long r = a + b;
    return ((a ^ r) & (b ^ r)) < 0 ? Long.MAX_VALUE : r;
  }
}
