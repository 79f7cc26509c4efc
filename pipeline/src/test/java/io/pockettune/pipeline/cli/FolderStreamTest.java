package io.pockettune.pipeline.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The filed messages of {@code demo --model minilm}: labels as designed, reproducible, varied. */
class FolderStreamTest {

  @Test
  void sameSeedSameMessages_otherSeedOthers() {
    assertEquals(new FolderStream(7).next(500), new FolderStream(7).next(500));
    assertNotEquals(new FolderStream(7).next(50), new FolderStream(8).next(50));
  }

  @Test
  void everyFolderIsPresent_andKindsComeInTheDesignedFractions() {
    int n = 20_000;
    List<FolderStream.Filed> messages = new FolderStream(42).next(n);
    Map<String, Integer> byFolder = new HashMap<>();
    Map<FolderStream.Kind, Integer> byKind = new EnumMap<>(FolderStream.Kind.class);
    for (FolderStream.Filed m : messages) {
      assertTrue(FolderStream.FOLDERS.contains(m.folder()), m.toString());
      assertTrue(!m.text().isBlank() && !m.text().contains("{"), "every slot is filled: " + m);
      assertEquals(m.folder(), m.attrs("label").get("label"), "the folder travels as the label attribute");
      byFolder.merge(m.folder(), 1, Integer::sum);
      byKind.merge(m.kind(), 1, Integer::sum);
    }
    for (String f : FolderStream.FOLDERS) {
      assertTrue(byFolder.getOrDefault(f, 0) > n / 10, f + " is a folder Maya uses: " + byFolder);
    }
    // Binomial standard deviation at n = 20,000 is about 0.3 points: 1 point is a wide margin.
    assertEquals(FolderStream.AMBIGUOUS, byKind.get(FolderStream.Kind.AMBIGUOUS) / (double) n, 0.01, byKind.toString());
    assertEquals(FolderStream.MIXED, byKind.get(FolderStream.Kind.MIXED) / (double) n, 0.01, byKind.toString());
  }

  @Test
  void mixedMessagesAreFiledByHabit() {
    assertEquals(1, FolderStream.habit(0, 1), "work and family: family");
    assertEquals(0, FolderStream.habit(3, 0), "baking and work: work");
    assertEquals(2, FolderStream.habit(2, 3), "cycling and baking: cycling");
    assertEquals(1, FolderStream.habit(2, 1), "cycling and family: family");
    for (FolderStream.Filed m : new FolderStream(3).next(2_000)) {
      if (m.kind() == FolderStream.Kind.MIXED) {
        assertNotEquals("baking", m.folder(), "baking never wins a mix: " + m);
      }
    }
  }

  @Test
  void heldOutMessagesAreRarelyCopiesOfTrainingOnes() {
    Set<String> training = new HashSet<>();
    new FolderStream(1).next(2_400).forEach(m -> training.add(m.text()));
    List<FolderStream.Filed> heldOut = new FolderStream(2).next(400);
    long copies = heldOut.stream().filter(m -> training.contains(m.text())).count();
    assertTrue(copies < 0.05 * heldOut.size(), copies + " of 400 held-out messages are copies of training ones");
  }
}
