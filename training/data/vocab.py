"""Slot values for the generator: people, places, errands, events, and how people say dates and times.

Written for the training data from scratch; the golden suite is never read here (decontamination
checks the result against it).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

FIRST_NAMES = ("Ava", "Liam", "Noor", "Mateo", "Chloe", "Kenji", "Fatima", "Oscar", "Ingrid", "Tariq", "Lucia",
               "Marcus", "Hana", "Diego", "Sofia", "Ethan", "Amara", "Jonas", "Mei", "Rafael", "Zoe", "Arjun",
               "Elena", "Felix", "Yara", "Tomasz", "Bea", "Kwame", "Iris", "Leo")
SURNAMES = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Fischer", "Reyes", "Kowalski")
RELATIONS = ("my sister", "my brother", "my landlord", "my accountant", "my boss", "the plumber", "my dad",
             "my mom", "the school", "my coach")
DOMAINS = ("example.com", "mail.test", "corp.example", "studio.test")
CITIES = ("Porto", "Nairobi", "Montreal", "Osaka", "Edinburgh", "Reykjavik", "Austin", "Krakow", "Cape Town",
          "Melbourne", "Bogota", "Helsinki", "Marrakesh", "Vancouver", "Hanoi", "Zurich", "Seville", "Denver",
          "Tallinn", "Auckland", "Lyon", "Busan", "Valparaiso", "Ljubljana")
PLACES = ("room 4B", "the downtown office", "the cafe on Main Street", "conference room Atlas", "the clinic",
          "Zoom", "the community center", "the library", "Building 2", "the north lobby")
# (task title, how people say it after "remind me to")
ERRANDS = (
    ("Renew the car registration", "renew the car registration"),
    ("Buy printer ink", "buy printer ink"),
    ("Submit the expense report", "submit the expense report"),
    ("Water the garden", "water the garden"),
    ("Back up the laptop", "back up the laptop"),
    ("Return the library books", "return the library books"),
    ("Order a birthday present for {name}", "order a birthday present for {name}"),
    ("Call {name} about the lease", "call {name} about the lease"),
    ("Pay the electricity bill", "pay the electricity bill"),
    ("Book train tickets to {city}", "book train tickets to {city}"),
    ("Pick up the prescription", "pick up the prescription"),
    ("Send the invoice to {name}", "send the invoice to {name}"),
    ("Clean out the fridge", "clean out the fridge"),
    ("Update the project roadmap", "update the project roadmap"),
    ("Schedule a vet visit for the cat", "schedule a vet visit for the cat"),
    ("Cancel the streaming subscription", "cancel the streaming subscription"),
    ("Fix the squeaky door", "fix the squeaky door"),
    ("Review {name}'s pull request", "review {name}'s pull request"),
    ("Print the boarding passes", "print the boarding passes"),
    ("Refill the water filter", "refill the water filter"),
    ("Reply to {name}'s message", "reply to {name}'s message"),
    ("Take the recycling out", "take the recycling out"),
    ("Prepare slides for the quarterly review", "prepare slides for the quarterly review"),
    ("Sign the permission slip", "sign the permission slip"),
)
# (event summary, how people say it)
EVENTS = (
    ("Haircut", "a haircut"),
    ("Lunch with {name}", "lunch with {name}"),
    ("Team standup", "the team standup"),
    ("Doctor's appointment", "a doctor's appointment"),
    ("Call with {name}", "a call with {name}"),
    ("Parent-teacher meeting", "the parent-teacher meeting"),
    ("Yoga class", "yoga class"),
    ("Project kickoff", "the project kickoff"),
    ("Coffee with {name}", "coffee with {name}"),
    ("Budget review", "the budget review"),
    ("Car service", "the car service"),
    ("Interview with {name}", "an interview with {name}"),
    ("Piano lesson", "a piano lesson"),
    ("Dinner with {name}", "dinner with {name}"),
    ("Design review", "the design review"),
    ("Physio session", "a physio session"),
    ("Book club", "book club"),
    ("1:1 with {name}", "my 1:1 with {name}"),
)
# Contrastive subjects: (to-do wording, event wording, word both titles contain)
PAIR_SUBJECTS = (
    ("call the dentist to move my cleaning", "dentist cleaning", "dentist"),
    ("book a table for {name}'s farewell", "{name}'s farewell dinner", "farewell"),
    ("prepare notes for the board meeting", "board meeting", "board"),
    ("get the car inspected", "car inspection", "inspection"),
    ("finish the grant proposal", "grant proposal writing session", "grant"),
    ("schedule the eye exam", "eye exam", "eye exam"),
    ("sort out the tax return", "tax appointment with the accountant", "tax"),
    ("buy tickets for the concert", "concert", "concert"),
    ("renew my passport", "passport office appointment", "passport"),
    ("plan the team offsite", "team offsite planning meeting", "offsite"),
    ("write the newsletter", "newsletter writing block", "newsletter"),
    ("call {name} about the move", "moving day with {name}", "mov"),
    ("practice the presentation", "presentation rehearsal", "presentation"),
    ("look into the gym membership", "gym session", "gym"),
    ("get a quote from the roofer", "roofer visit", "roofer"),
    ("follow up with the recruiter", "recruiter call", "recruiter"),
)
EMAIL_TOPICS = (
    ("Running late", "I'm running about 15 minutes late", "I'm running about 15 minutes late."),
    ("Invoice paid", "the invoice has been paid", "The invoice has been paid."),
    ("Meeting notes", "I'll share the meeting notes by tonight", "I'll share the meeting notes by tonight."),
    ("Thank you", "thanks for the help last week", "Thanks for the help last week."),
    ("Rent", "the rent will be transferred on Monday", "The rent will be transferred on Monday."),
    ("Sick today", "I'm sick and won't be in today", "I'm sick and won't be in today."),
    ("Weekend plans", "I can make it on Saturday", "I can make it on Saturday."),
    ("Contract", "the signed contract is attached", "The signed contract is attached."),
    ("Leak", "the kitchen sink is leaking again", "The kitchen sink is leaking again."),
    ("Reschedule", "we need to move our meeting to next week", "We need to move our meeting to next week."),
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def person(rng: random.Random) -> str:
    return rng.choice(FIRST_NAMES)


def email_address(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES).lower()}.{rng.choice(SURNAMES).lower()}@{rng.choice(DOMAINS)}"


def fill(template: str, rng: random.Random, **known: str) -> str:
    """Fill {name}/{city} placeholders (a given value wins)."""
    return template.format(name=known.get("name") or person(rng), city=known.get("city") or rng.choice(CITIES))


def random_now(rng: random.Random) -> datetime:
    """A conversation time in 2026, working hours, any weekday: the model must read the date from the prompt."""
    from datetime import timezone

    day = date(2026, 1, 1) + timedelta(days=rng.randrange(0, 330))
    return datetime(day.year, day.month, day.day, rng.randrange(7, 19), rng.choice((0, 0, 15, 30, 45)),
                    tzinfo=timezone.utc)


@dataclass(frozen=True)
class When:
    text: str  # how the user says it, e.g. "next Thursday"
    day: date


def day_phrase(rng: random.Random, now: datetime, allow_today: bool = True) -> When:
    """A day as people say it, resolved against `now` (weekday names mean the next such day after today)."""
    today = now.date()
    options = ["tomorrow", "weekday", "next weekday", "in n days", "month day"] + (["today"] if allow_today else [])
    kind = rng.choice(options)
    if kind == "today":
        return When("today", today)
    if kind == "tomorrow":
        return When("tomorrow", today + timedelta(days=1))
    if kind in ("weekday", "next weekday"):
        target = rng.randrange(7)
        ahead = (target - today.weekday()) % 7 or 7
        prefix = "on " if kind == "weekday" else "next "
        return When(prefix + WEEKDAYS[target], today + timedelta(days=ahead))
    if kind == "in n days":
        n = rng.randrange(2, 10)
        return When(f"in {n} days", today + timedelta(days=n))
    d = today + timedelta(days=rng.randrange(3, 60))
    return When(f"on {MONTHS[d.month - 1]} {d.day}", d)


def time_phrase(rng: random.Random) -> tuple[str, int, int]:
    """A clock time as people say it: ("at 3pm", 15, 0)."""
    hour = rng.randrange(7, 21)
    minute = rng.choice((0, 0, 0, 30, 15, 45))
    style = rng.randrange(3)
    if hour == 12 and minute == 0 and style == 0:
        return "at noon", 12, 0
    h12 = hour % 12 or 12
    suffix = "am" if hour < 12 else "pm"
    if style == 0:
        text = f"at {h12}{':%02d' % minute if minute else ''}{suffix}"
    elif style == 1:
        text = f"at {h12}{':%02d' % minute if minute else ''} {suffix.upper()}"
    else:
        text = f"at {hour:02d}:{minute:02d}"
    return text, hour, minute


def iso_minute(d: date, hour: int, minute: int) -> str:
    return f"{d.isoformat()}T{hour:02d}:{minute:02d}"


def typo(text: str, rng: random.Random) -> str:
    """One or two realistic slips: a dropped or swapped letter in a longer word."""
    words = text.split(" ")
    for _ in range(rng.randrange(1, 3)):
        long_words = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
        if not long_words:
            break
        i = rng.choice(long_words)
        w, j = words[i], rng.randrange(1, len(words[i]) - 2)
        words[i] = w[:j] + w[j + 1:] if rng.random() < 0.5 else w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)
