package io.pockettune.pipeline.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Maya's messages with the folder she files each one in, for {@code demo --model minilm}: the same
 * persona as {@link PersonaStream} (a nurse on ward 7 in Leeds who cycles, bakes and texts her
 * sister Ada and her partner Tom), writing about four things, each message filed in one of the
 * folders {@link #FOLDERS}.
 *
 * <p>The folder is the message's real topic, with the ambiguity real filing has:
 * <ul>
 *   <li>most messages ({@code 1 - MIXED - AMBIGUOUS}) are about one topic and filed under it;</li>
 *   <li>{@link #MIXED} of them mention two topics and are filed by Maya's habit, which a generic
 *       model cannot know: anything touching family goes to family, else anything touching work to
 *       work, else cycling; baking never wins (cake for the ward is work, a cafe stop on a ride is
 *       cycling). This is what personalization can learn;</li>
 *   <li>{@link #AMBIGUOUS} of them say nothing about a topic ("running late, sorry x") and are
 *       filed wherever she happened to be, at random: no model can get those right.</li>
 * </ul>
 * Texts come from templates filled from vocabularies, with openers and sign-offs, so that
 * messages generated for evaluation are almost never copies of training ones.
 *
 * <p>Deterministic for a seed. Not thread-safe.
 */
public final class FolderStream {
  public static final List<String> FOLDERS = List.of("work", "family", "cycling", "baking");
  /** The label prompt of each folder, whose embedding starts MiniLM's head (zero-shot at step 0). */
  public static final List<String> LABEL_PROMPTS = List.of("A message about work.", "A message about family.",
      "A message about cycling.", "A message about baking.");
  /** Fraction of messages that mention two topics, filed by habit. */
  public static final double MIXED = 0.22;
  /** Fraction of messages with no topic, filed at random. */
  public static final double AMBIGUOUS = 0.08;

  /** What kind of message: about one topic, about two, or about none. */
  public enum Kind { SINGLE, MIXED, AMBIGUOUS }

  /**
   * One message.
   *
   * @param text         what Maya wrote
   * @param conversation who it went to
   * @param folder       the folder she filed it in (one of {@link #FOLDERS}), the event's label
   * @param kind         how the folder follows from the text
   */
  public record Filed(String text, String conversation, String folder, Kind kind) {
    /** @return the event attributes, with the folder under {@code labelAttribute} */
    public Map<String, String> attrs(String labelAttribute) {
      return Map.of("app", "messages", labelAttribute, folder);
    }
  }

  private static final int WORK = 0;
  private static final int FAMILY = 1;
  private static final int CYCLING = 2;
  private static final int BAKING = 3;

  private static final String[] OPENERS = {"", "", "", "", "hiya, ", "ok so ", "right, ", "quick one: ", "ugh, ", "so ",
      "morning! ", "btw ", "sorry, "};
  private static final String[] CLOSERS = {"", "", "", "", " x", " xx", " ta", " cheers", " haha", " lol", "!", " :)",
      " fingers crossed", " wish me luck"};

  private static final Map<String, String[]> VOCAB = Map.ofEntries(
      Map.entry("day", new String[] {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
          "tomorrow", "next week", "the weekend"}),
      Map.entry("time", new String[] {"6", "half 7", "8ish", "9", "lunchtime", "after 5", "around 10", "first thing",
          "tonight"}),
      Map.entry("shift", new String[] {"night shift", "long day", "early", "late", "bank shift", "three nights",
          "weekend on call"}),
      Map.entry("colleague", new String[] {"priya", "sam", "jo", "the new f1", "sister khan", "dev", "the agency nurse"}),
      Map.entry("ward", new String[] {"ward 7", "the ward", "a&e", "bay 3", "the side rooms", "the assessment unit"}),
      Map.entry("bed", new String[] {"4", "7", "9", "12", "15", "18", "21"}),
      Map.entry("freq", new String[] {"hourly", "every 4 hours", "twice a shift", "before meds"}),
      Map.entry("worktask", new String[] {"the falls audit", "my appraisal", "the drug round", "the rota",
          "mandatory training", "the handover sheet", "the controlled drugs check", "revalidation"}),
      Map.entry("relative", new String[] {"mum", "dad", "ada", "nana", "auntie bee", "uncle ray", "tom's mum",
          "our kid"}),
      Map.entry("kid", new String[] {"leo", "little mo", "ada's two", "the twins", "my nephew", "my niece"}),
      Map.entry("event", new String[] {"nana's 80th", "the christening", "sunday lunch", "mum's retirement do",
          "the family bbq", "leo's school play", "christmas at mum's", "the cousins' reunion"}),
      Map.entry("meal", new String[] {"a roast", "tea", "sunday dinner", "a takeaway", "brunch"}),
      Map.entry("worry", new String[] {"her hip", "the boiler", "dad's driving", "the cat", "her blood pressure",
          "the car insurance"}),
      Map.entry("ride", new String[] {"the otley loop", "the chevin climb", "a spin round the reservoir",
          "the canal path", "a gravel ride to ilkley", "the dales 100", "hill reps up cragg vale",
          "the club chain gang"}),
      Map.entry("km", new String[] {"25", "38", "42", "55", "64", "80", "96", "110"}),
      Map.entry("weather", new String[] {"chucking it down", "freezing", "actually sunny", "windy as anything",
          "dry but grim", "lovely"}),
      Map.entry("ridefeel", new String[] {"legs felt great", "headwind all the way back", "new pb on the climb",
          "absolutely blown", "smooth the whole way", "dropped on the last hill"}),
      Map.entry("part", new String[] {"brake pads", "a chain", "tubeless tyres", "a rear light", "cleats",
          "bar tape", "a cassette"}),
      Map.entry("shop", new String[] {"the bike shop in otley", "chevin cycles", "the place on kirkstall road"}),
      Map.entry("bake", new String[] {"sourdough", "a rye loaf", "focaccia", "banana bread", "cinnamon buns",
          "a lemon drizzle", "flapjacks", "brownies", "hot cross buns", "a victoria sponge", "bagels", "croissants"}),
      Map.entry("ingredient", new String[] {"spelt flour", "rye", "cardamom", "brown butter", "dark chocolate",
          "orange zest", "fresh yeast", "rosemary", "tahini", "dates"}),
      Map.entry("bakeresult", new String[] {"came out perfect", "sank in the middle", "way too dense",
          "the crumb was gorgeous", "burnt the bottom", "rose like a dream", "a bit underbaked"}),
      Map.entry("starter", new String[] {"bubbling nicely", "really lively", "sluggish", "smelling of acetone",
          "doubled overnight"}),
      Map.entry("temp", new String[] {"180", "200", "220", "230", "gas 4"}),
      Map.entry("mins", new String[] {"20", "25", "35", "40", "50"}),
      Map.entry("place", new String[] {"the co-op", "kirkstall", "roundhay park", "otley", "headingley",
          "the market", "the cafe by the canal"}),
      Map.entry("feeling", new String[] {"knackered", "buzzing", "shattered", "a bit rough", "weirdly awake",
          "fine honestly"}));

  /** Per topic, templates about that topic only. */
  private static final String[][] SINGLE = {
    { // work
      "can anyone swap my {shift} on {day}? i can do a {shift} instead",
      "handover at {time}: bay 3 settled, bed {bed} needs obs {freq}",
      "running late for my {shift}, tell {colleague} i'm ten minutes out",
      "rota for next month is up and i'm on {shift} again",
      "{colleague}, could you cover my {shift} {day}? i owe you",
      "bed {bed} is for discharge {day}, pharmacy still haven't sent the meds",
      "{worktask} is due {day} and i haven't started",
      "short staffed on {ward} again, {feeling} after that {shift}",
      "sister wants {worktask} done before {day}",
      "patient in bed {bed} kept asking for you, {colleague}",
      "swapped my {shift} with {colleague}, so i'm in {day} now",
      "two admissions to {ward} at {time}, no beds anywhere",
    },
    { // family
      "mum wants everyone round for {meal} on {day}",
      "it's {relative}'s birthday {day}, what are we getting them?",
      "can you ring mum {time}? she's worried about {worry}",
      "{relative} called, all fine, just wanted a natter",
      "are you picking up {kid} from school {day}? i can do {time}",
      "ada, are you coming to {event}?",
      "{relative} sent photos of {kid}, so cute",
      "family group chat is chaos again, {relative} started it",
      "dad needs help moving the wardrobe {day}",
      "{kid} wants a sleepover at ours {day}",
      "booked a table for {event}, tell {relative}",
      "{relative} is staying with us over {day}",
    },
    { // cycling
      "anyone up for {ride} {day} at {time}? forecast says {weather}",
      "did {ride} this morning, {km} km, {ridefeel}",
      "need new {part} before the sportive",
      "club ride leaves {place} at {time}, steady pace",
      "puncture halfway round {ride}, fixed it, {ridefeel}",
      "bike is booked in at {shop} for {part}",
      "{km} km on the turbo because it was {weather}",
      "signed up for {ride} on {day}, {km} km",
      "chain keeps skipping on the climbs, might be {part}",
      "{ride} in the rain, {ridefeel}",
      "strava says {km} km this week, not bad",
      "who's got a spare pump for {ride}?",
    },
    { // baking
      "starter is {starter}, baking {bake} tonight",
      "tried {bake} with {ingredient}, {bakeresult}",
      "oven at {temp} for {mins} minutes and the {bake} {bakeresult}",
      "need {ingredient} for {bake}, does {place} sell it?",
      "proving {bake} overnight in the fridge",
      "my {bake} {bakeresult}, gutted",
      "new recipe: {bake} with {ingredient} and {ingredient}",
      "fed the starter, it's {starter}",
      "anyone got a good recipe for {bake}?",
      "first go at {bake}, {bakeresult}",
      "bought a new banneton for my {bake}",
      "{bake} is cooling on the rack, {bakeresult}",
    },
  };

  /** Templates about two topics: {first, second, template}; filed by {@link #habit}. */
  private static final Object[][] MIXED_TEMPLATES = {
    {WORK, BAKING, "bringing {bake} in for the {shift} on {ward}"},
    {WORK, BAKING, "made {bake} for {colleague}'s leaving do on the ward"},
    {WORK, BAKING, "the ward demolished my {bake} in ten minutes during the {shift}"},
    {WORK, BAKING, "baking {bake} for the staff room before my {shift}"},
    {FAMILY, BAKING, "baking {bake} for {event}"},
    {FAMILY, BAKING, "{relative} wants my {bake} recipe for {kid}"},
    {FAMILY, BAKING, "mum asked me to bring {bake} to {meal} on {day}"},
    {FAMILY, BAKING, "made {bake} with {kid}, flour everywhere"},
    {CYCLING, BAKING, "cafe stop on {ride}, best {bake} ever"},
    {CYCLING, BAKING, "{km} km then {bake} at the cafe in {place}"},
    {CYCLING, BAKING, "packed {bake} for {ride} {day}"},
    {FAMILY, CYCLING, "riding over to mum's for {meal} on {day}"},
    {FAMILY, CYCLING, "teaching {kid} to ride a bike {day}"},
    {FAMILY, CYCLING, "{relative} wants to join us for {ride} {day}"},
    {WORK, CYCLING, "cycled in for my {shift}, {weather} the whole way"},
    {WORK, CYCLING, "someone nicked my bike light from the rack at work, {shift} was bad enough"},
    {WORK, CYCLING, "riding home after the {shift}, {feeling}"},
    {WORK, FAMILY, "can't make {event}, i'm on a {shift}, sorry mum"},
    {WORK, FAMILY, "{relative} came in to {ward} for a check-up during my {shift}"},
    {WORK, FAMILY, "swapped my {shift} so i can be at {event}"},
  };

  /** Messages with no topic; filed at random. */
  private static final String[] AMBIGUOUS_TEMPLATES = {
    "running late, sorry", "see you at {time}", "can't wait for {day}", "ok sounds good", "that went well actually",
    "{feeling} today", "did you get my last message?", "call me when you're free", "on my way", "back at {time}",
    "what a day", "tell you later", "just saw this, {feeling}", "love that", "no worries, {day} then",
  };
  /** Where an ambiguous message lands: work, family, cycling, baking. */
  private static final double[] AMBIGUOUS_PRIOR = {0.35, 0.30, 0.20, 0.15};

  private static final String[][] CONVERSATIONS = {
    {"ward7-group", "priya", "sam"}, {"ada", "mum", "family-group"}, {"club-rides", "tom"}, {"tom", "ada", "bake-club"},
  };

  private final SplittableRandom random;

  /** @param seed the stream's seed: the same seed gives the same messages */
  public FolderStream(long seed) {
    this.random = new SplittableRandom(seed);
  }

  /** @return the next {@code n} messages */
  public List<Filed> next(int n) {
    List<Filed> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      out.add(next());
    }
    return out;
  }

  Filed next() {
    double u = random.nextDouble();
    if (u < AMBIGUOUS) {
      String text = fill(pick(AMBIGUOUS_TEMPLATES));
      double v = random.nextDouble();
      int folder = 0;
      for (double acc = AMBIGUOUS_PRIOR[0]; v >= acc && folder < AMBIGUOUS_PRIOR.length - 1; ) {
        folder++;
        acc += AMBIGUOUS_PRIOR[folder];
      }
      return filed(text, folder, Kind.AMBIGUOUS);
    }
    if (u < AMBIGUOUS + MIXED) {
      Object[] t = MIXED_TEMPLATES[random.nextInt(MIXED_TEMPLATES.length)];
      return filed(fill((String) t[2]), habit((int) t[0], (int) t[1]), Kind.MIXED);
    }
    int topic = random.nextInt(FOLDERS.size());
    return filed(fill(pick(SINGLE[topic])), topic, Kind.SINGLE);
  }

  /** Maya's habit for a message about two topics: family first, then work, then cycling; baking never wins. */
  static int habit(int a, int b) {
    int[] order = {FAMILY, WORK, CYCLING, BAKING};
    for (int f : order) {
      if (a == f || b == f) {
        return f;
      }
    }
    throw new IllegalArgumentException("no topic");
  }

  private Filed filed(String body, int folder, Kind kind) {
    String text = pick(OPENERS) + body + pick(CLOSERS);
    String[] to = CONVERSATIONS[folder];
    return new Filed(text, to[random.nextInt(to.length)], FOLDERS.get(folder), kind);
  }

  private String fill(String template) {
    StringBuilder sb = new StringBuilder(template.length() + 32);
    int i = 0;
    while (i < template.length()) {
      int open = template.indexOf('{', i);
      if (open < 0) {
        sb.append(template, i, template.length());
        break;
      }
      int close = template.indexOf('}', open);
      sb.append(template, i, open);
      String[] words = VOCAB.get(template.substring(open + 1, close));
      if (words == null) {
        throw new IllegalStateException("no vocabulary for " + template.substring(open, close + 1));
      }
      sb.append(pick(words));
      i = close + 1;
    }
    return sb.toString();
  }

  private String pick(String[] options) {
    return options[random.nextInt(options.length)];
  }
}
