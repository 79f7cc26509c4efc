#!/usr/bin/env python3
"""Writes events.jsonl, the made-up sample the compose file's producer replays into Kafka.

8 users with 40 messages and 2 notes each, in event-time order over a week from
2026-09-01T07:00:00Z. Every line names its topic and its user (the Kafka key); the text is
assembled from the phrases below with a fixed seed, so running this again writes the same file.
No real data: `python3 fleet/docker/make-events.py > fleet/docker/events.jsonl`.
"""
import json
import random
from datetime import datetime, timedelta, timezone

USERS = ["ada", "bo", "chen", "dara", "eli", "femi", "gus", "hana"]
FRIENDS = ["maya", "sam", "noor", "lev", "rita", "tom"]
OPENERS = ["Heading to the", "Can't wait for", "Just finished my", "Running late for", "Don't forget the",
           "Thinking about the", "Loved the", "Skipping the"]
THINGS = {
    "ada": ["climbing wall", "bouldering session", "trail run", "gear swap"],
    "bo": ["band practice", "open mic", "guitar lesson", "vinyl fair"],
    "chen": ["code review", "standup", "hackathon", "release party"],
    "dara": ["farmers market", "sourdough class", "dinner party", "tea tasting"],
    "eli": ["chess club", "library talk", "book swap", "puzzle night"],
    "femi": ["football match", "five-a-side", "gym class", "swim meet"],
    "gus": ["pottery class", "gallery opening", "sketch walk", "film night"],
    "hana": ["yoga class", "garden shift", "bike repair cafe", "river walk"],
}
ENDINGS = ["at 7", "tomorrow", "this weekend", "after work", "with the usual crew", "if it stops raining",
           "- save me a seat", "again, obviously"]
NOTE_TITLES = ["Plans", "To buy", "Ideas", "Reminders"]


def main():
    rng = random.Random(42)
    start = datetime(2026, 9, 1, 7, 0, tzinfo=timezone.utc)
    events = []
    for user in USERS:
        for i in range(40):
            t = start + timedelta(minutes=rng.randrange(7 * 24 * 60))
            text = f"{rng.choice(OPENERS)} {rng.choice(THINGS[user])} {rng.choice(ENDINGS)}"
            events.append((t, {"topic": "messages", "key": user, "id": f"{user}-m-{i + 1:03d}",
                               "conversation": f"{user}-{rng.choice(FRIENDS)}", "sender": user, "text": text}))
        for i in range(2):
            t = start + timedelta(minutes=rng.randrange(7 * 24 * 60))
            things = rng.sample(THINGS[user], 2)
            events.append((t, {"topic": "notes", "key": user, "id": f"{user}-n-{i + 1}",
                               "title": rng.choice(NOTE_TITLES), "body": f"{things[0]}, then {things[1]}"}))
    events.sort(key=lambda e: (e[0], e[1]["id"]))
    for t, e in events:
        e["eventTime"] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        print(json.dumps(e))


if __name__ == "__main__":
    main()
