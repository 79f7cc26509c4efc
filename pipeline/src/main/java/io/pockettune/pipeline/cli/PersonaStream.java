package io.pockettune.pipeline.cli;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * A synthetic but consistent stream of one person's messages and notes, for the demo and tests.
 *
 * <p>The persona is Maya Okafor, a nurse on rotating shifts in Leeds who cycles, bakes sourdough,
 * texts her sister Ada and her partner Tom in lowercase with few capitals, signs off with "x", says
 * "ta" and "cheers", and keeps tidy notes (shift handovers, recipes, ride logs, lists). What makes it
 * useful for personalization is that the style and the cast are stable while the content varies:
 * a model that adapts to Maya should predict her next message better than a generic one, and the
 * held-out events (later in time) share her style but not her exact sentences.
 *
 * <p>Deterministic for a seed. Not thread-safe.
 */
public final class PersonaStream {

  /** One generated event: a message or a note, before Avro encoding. */
  public sealed interface Event permits ChatMessage, NoteEvent {
    Instant time();
  }

  public record ChatMessage(String id, String conversation, String sender, String text, Instant time, Map<String, String> attrs)
      implements Event {}

  public record NoteEvent(String id, String title, String body, Instant time, Map<String, String> attrs) implements Event {}

  private static final String[] CONTACTS = {"ada", "tom", "ward7-group", "priya", "club-rides"};
  private static final String[] PLACES = {"the co-op", "kirkstall", "the bakery on call lane", "roundhay park", "the ward", "otley", "headingley", "the market"};
  private static final String[] TIMES = {"6", "half 7", "8ish", "after my shift", "tomorrow morning", "at lunch", "around 9", "sunday"};
  private static final String[] FOODS = {"sourdough", "banana bread", "focaccia", "a curry", "pasta bake", "flapjacks", "soup", "cinnamon buns"};
  private static final String[] FEELINGS = {"knackered", "buzzing", "shattered", "fine honestly", "a bit rough", "so ready for bed", "weirdly awake"};
  private static final String[] SHIFTS = {"nights", "a long day", "an early", "a late", "back to back lates", "my last night"};
  private static final String[] RIDES = {"the otley loop", "a quick spin round the reservoir", "the chevin climb", "the canal path", "a gravel ride out to ilkley"};
  private static final String[] WEATHER = {"chucking it down", "freezing", "actually sunny", "grim", "windy as anything", "lovely"};
  private static final String[] THINGS = {"the charger", "my keys", "oat milk", "bin bags", "the spare lights", "biscuit's food", "plasters"};

  private static final String[][] MESSAGE_TEMPLATES = {
    {"ada", "hiya, are you about {time}? fancy {place} x"},
    {"ada", "just finished {shift}, {feeling}. call you tomorrow x"},
    {"ada", "mum rang again about sunday lunch, are you bringing {food} or am i x"},
    {"ada", "omg did you see what dad posted haha"},
    {"ada", "can you grab {thing} if you're passing {place}? ta x"},
    {"tom", "on my way home, need anything from {place}?"},
    {"tom", "it's {weather} out, might skip the ride and do {food} instead"},
    {"tom", "can you feed biscuit before you go, i'm on {shift} x"},
    {"tom", "made {food}, saved you some. don't eat it all x"},
    {"tom", "running late, {time} instead? sorry x"},
    {"tom", "have you seen {thing}? can't find it anywhere"},
    {"ward7-group", "anyone fancy swapping {shift} next week? i can do {time}"},
    {"ward7-group", "handover at {time}, bay 3 is settled, bed 12 needs obs hourly"},
    {"ward7-group", "bringing {food} in tomorrow, help yourselves"},
    {"ward7-group", "cheers for covering, i owe you one"},
    {"priya", "coffee {time}? i'm {feeling} after {shift}"},
    {"priya", "that course looks good, are you signing up? i might"},
    {"priya", "cheers for today, needed that x"},
    {"club-rides", "count me in for {ride} {time}"},
    {"club-rides", "anyone doing {ride}? forecast says {weather}"},
    {"club-rides", "puncture on the way back, fixed now, see you at {place}"},
  };

  private static final String[] NOTE_KINDS = {"handover", "recipe", "ride", "list", "journal"};

  private final SplittableRandom random;
  private Instant clock;
  private long counter;

  /**
   * @param seed  seed of the stream
   * @param start event time of the first event
   */
  public PersonaStream(long seed, Instant start) {
    this.random = new SplittableRandom(seed);
    this.clock = start;
  }

  /** @return the next {@code n} events, in event-time order */
  public List<Event> next(int n) {
    List<Event> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      out.add(next());
    }
    return out;
  }

  Event next() {
    clock = clock.plus(Duration.ofSeconds(60 + random.nextInt(3 * 3600)));
    counter++;
    return random.nextInt(10) < 8 ? message() : note();
  }

  private ChatMessage message() {
    String[] t = MESSAGE_TEMPLATES[random.nextInt(MESSAGE_TEMPLATES.length)];
    String text = fill(t[1]);
    if (random.nextInt(6) == 0) {
      text = text + " " + pick(new String[] {"haha", "lol", "ta", "cheers", "x", "love you"});
    }
    return new ChatMessage("m-" + counter, t[0], "maya", text, clock, Map.of("app", "messages"));
  }

  private NoteEvent note() {
    String kind = pick(NOTE_KINDS);
    String title;
    String body;
    switch (kind) {
      case "handover" -> {
        title = "handover " + pick(new String[] {"bay 2", "bay 3", "side rooms", "bay 5"});
        body = "bed " + (1 + random.nextInt(24)) + ": obs stable, " + pick(new String[] {"eating well", "needs encouraging with fluids", "mobilising with frame", "pain controlled"})
            + ". bed " + (1 + random.nextInt(24)) + ": " + pick(new String[] {"awaiting bloods", "for discharge tomorrow", "family visiting at 2", "reposition 2 hourly"}) + ".";
      }
      case "recipe" -> {
        String food = pick(FOODS);
        title = food;
        body = pick(new String[] {"500g strong white flour, 350g water, 100g starter, 10g salt.", "2 ripe bananas, 75g butter, 150g sugar, 1 egg, 190g flour.", "onions, garlic, ginger, a tin of tomatoes, chickpeas, garam masala."})
            + " " + pick(new String[] {"bake at 230 for 40 min.", "prove overnight in the fridge.", "simmer for 30 min, better the next day.", "gas 4 for about an hour."});
      }
      case "ride" -> {
        title = "ride log";
        body = pick(RIDES) + ", " + (15 + random.nextInt(70)) + " km, " + pick(WEATHER) + ". " + pick(new String[] {"legs felt good.", "headwind all the way back.", "new pb on the climb!", "stopped for cake at otley."});
      }
      case "list" -> {
        title = "to do";
        body = "- " + pick(THINGS) + "\n- book " + pick(new String[] {"dentist", "bike service", "train to london", "mum's present"}) + "\n- " + pick(new String[] {"pay rent", "ring ada", "renew nmc registration", "clean the fridge"});
      }
      default -> {
        title = "journal";
        body = "did " + pick(SHIFTS) + " and felt " + pick(FEELINGS) + ". " + pick(new String[] {"tom made tea which helped.", "went to " + pick(PLACES) + " after.", "biscuit was a menace.", "rang ada, she's fine."});
      }
    }
    return new NoteEvent("n-" + counter, title, body, clock, Map.of("app", "notes", "kind", kind));
  }

  private String fill(String template) {
    return template
        .replace("{time}", pick(TIMES))
        .replace("{place}", pick(PLACES))
        .replace("{food}", pick(FOODS))
        .replace("{feeling}", pick(FEELINGS))
        .replace("{shift}", pick(SHIFTS))
        .replace("{ride}", pick(RIDES))
        .replace("{weather}", pick(WEATHER))
        .replace("{thing}", pick(THINGS));
  }

  private String pick(String[] options) {
    return options[random.nextInt(options.length)];
  }
}
