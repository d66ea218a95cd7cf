"""Replies with no tool call: no-tool negatives (small talk, questions about the tools, out-of-scope
requests, tool-like requests too vague to act on) and a general instruction mix against forgetting.
"""
from __future__ import annotations

import random
from datetime import datetime

from harness.suite import resolve_catalogue
from training.data.generate import Phrasing, Turns
from training.data.vocab import CITIES

SMALL_TALK = (
    ("Good morning!", "Good morning! What can I do for you today?"),
    ("hey", "Hey! How can I help?"),
    ("How are you doing?", "I'm doing well, thanks for asking. What can I help you with?"),
    ("thank you so much", "You're welcome! Let me know if there's anything else."),
    ("Cheers, that's everything.", "Glad I could help. Have a good day!"),
    ("You're awesome", "Thank you! Happy to help whenever you need."),
    ("ok cool", "Great. Anything else I can do?"),
    ("Sorry, I was just testing you.", "No problem at all. I'm here when you need me."),
    ("bye!", "Bye! Talk soon."),
    ("What's your name?", "I'm your personal assistant. I can manage your tasks and calendar, check the weather and send emails."),
)
OUT_OF_SCOPE = (
    ("Can you order me a pizza?", "I can't place orders. I can add a reminder to order one, or put dinner on your calendar."),
    ("Book me a flight to {city}.", "I can't book flights. I can add a task to book it or block time on your calendar for the trip."),
    ("Play some music.", "I can't play music. I can help with your tasks, calendar, email and the weather."),
    ("Turn off the lights in the living room.", "I can't control devices. I can set a reminder for you instead."),
    ("Send a text message to my wife.", "I can't send text messages, only emails. Would you like me to email her instead?"),
    ("What's the stock price of ACME today?",
     "I don't have access to stock prices. I can check the weather, manage tasks and your calendar, or send emails."),
    ("Translate 'good night' into Japanese.", "'Good night' in Japanese is 'oyasumi nasai' (おやすみなさい)."),
    ("Can you call {city} city hall for me?", "I can't make phone calls. I can add a task to call them, or block time for it."),
)
VAGUE = (
    ("Remind me.", "Sure. What would you like me to remind you about, and when?"),
    ("Schedule something for next week.", "Happy to. What should I schedule, and on which day and time?"),
    ("Send an email.", "Who should I send it to, and what should it say?"),
    ("What's the weather?", "Which city would you like the weather for?"),
    ("Move my meeting.", "Which meeting do you mean, and when should it move to? I don't see one in our conversation yet."),
    ("Delete it.", "I'm not sure which item you mean. Could you tell me which task or event to delete?"),
    ("Add the thing we talked about.", "I don't have that in our conversation. What should I add, and is it a task or a calendar event?"),
)
FACTS = (
    ("What's the capital of Canada?", "The capital of Canada is Ottawa."),
    ("How many days are there in a leap year?", "A leap year has 366 days."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
    ("What is the boiling point of water in Fahrenheit?", "Water boils at 212 degrees Fahrenheit at sea level."),
    ("What's the largest planet in our solar system?", "Jupiter is the largest planet in our solar system."),
    ("How many continents are there?", "There are seven continents."),
    ("What language is spoken in Brazil?", "The official language of Brazil is Portuguese."),
    ("What does CPU stand for?", "CPU stands for central processing unit."),
    ("What is photosynthesis?", "Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen."),
    ("Which ocean is the largest?", "The Pacific Ocean is the largest."),
    ("How many minutes are in a day?", "There are 1,440 minutes in a day."),
    ("Who was the first person to walk on the moon?", "Neil Armstrong, in July 1969."),
)
ADVICE_FIXED = (
    ("Give me a tip for sleeping better.", "Keep a regular bedtime, and put screens away for the last half hour before sleep."),
    ("How do I stay productive in the afternoon?",
     "Take a short walk after lunch, work in focused blocks, and tackle easy tasks when energy dips."),
    ("Suggest a name for a grey cat.", "How about Pebble, Smokey or Ash?"),
    ("What's a good way to start a speech?", "Open with a short story or a surprising fact that ties to your main point."),
    ("Write a one-line birthday wish for a colleague.", "Happy birthday! Wishing you a great year ahead, inside and outside the office."),
    ("Give me a synonym for 'quick'.", "Fast, rapid or swift."),
    ("How do I boil an egg?",
     "Cover it with water, bring to a boil, then simmer 7 to 9 minutes for hard-boiled and cool it in cold water."),
    ("Summarize what a to-do list is for.", "A to-do list keeps track of things you need to do, so nothing slips and you can prioritise."),
)


def _tool_questions() -> tuple[tuple[str, str], ...]:
    """Questions about the tools, answered from the catalogue itself."""
    cat = resolve_catalogue()  # the assistant suite's tools: this is its generator
    out = [(f"What does {t.name} do?", f"{t.name}: {t.summary} I use it when you ask for that.") for t in cat.tools]
    out += [
        ("What's the difference between a task and a calendar event?",
         "A task is something to do, with an optional due date; a calendar event blocks a time slot, like a meeting or appointment."),
        ("Which tools can you use?",
         "I can " + ", ".join(t.summary.rstrip(".").lower() for t in cat.tools[:4]) + ", and manage existing tasks and events."),
        ("Can you see my old emails?", "No, I can only send emails, not read them."),
        ("Do tasks have priorities?", "Yes: low, medium or high. If you don't say, I use medium."),
        ("What time zone do you use?", "I use the time zone shown with the current date and time at the top of our conversation."),
    ]
    return tuple(out)


OPENERS = ("", "", "Hi! ", "Quick question: ", "Hey, ", "Sorry to bother you. ", "One more thing: ")


def _fixed(pairs: tuple[tuple[str, str], ...], index: int):
    def build(rng: random.Random, now: datetime) -> Turns:
        question, answer = pairs[index]
        city = rng.choice(CITIES)
        return [("user", rng.choice(OPENERS) + question.format(city=city)), ("assistant", answer.format(city=city))]
    return build


def _arithmetic(index: int):
    ops = (("plus", lambda a, b: a + b), ("minus", lambda a, b: a - b), ("times", lambda a, b: a * b))

    def build(rng: random.Random, now: datetime) -> Turns:
        word, fn = ops[index]
        a, b = rng.randrange(11, 99), rng.randrange(11, 99)
        form = rng.choice(("What is {a} {w} {b}?", "Quick math: {a} {w} {b}", "calculate {a} {w} {b}"))
        return [("user", form.format(a=a, b=b, w=word)), ("assistant", f"{a} {word} {b} is {fn(a, b)}.")]
    return build


def _conversion(index: int):
    units = (("kilometers", "miles", 0.621371), ("kilograms", "pounds", 2.20462), ("liters", "US gallons", 0.264172))

    def build(rng: random.Random, now: datetime) -> Turns:
        src, dst, k = units[index]
        n = rng.randrange(2, 200)
        return [("user", f"How many {dst} is {n} {src}?"), ("assistant", f"{n} {src} is about {n * k:.1f} {dst}.")]
    return build


AFTER_RESULT = (("thanks!", "You're welcome!"), ("perfect, thank you", "Glad to help. Anything else?"),
                ("great", "Done. Let me know if you need anything else."), ("ok", "All set."))


def _after_result(index: int):
    """A thank-you after a tool result: the call is done, so the reply must not call again."""
    from training.data.examples import tool_result
    from training.data.generate import EVENT_FORMS, TASK_FORMS, event_form, task_form

    def build(rng: random.Random, now: datetime) -> Turns:
        if rng.random() < 0.5:
            turns = task_form(rng.choice(TASK_FORMS))(rng, now)
            result = tool_result("createTask", {"taskId": f"task_{rng.randrange(100, 9999)}"})
        else:
            turns = event_form(rng.choice(EVENT_FORMS))(rng, now)
            result = tool_result("createCalendarEvent", {"eventId": f"evt_{rng.randrange(100, 9999)}"})
        text, answer = AFTER_RESULT[index]
        return turns + [("tool", result), ("user", text), ("assistant", answer)]
    return build


# Families whose wording is composed from parts, so the no-tool side of the data is as varied as the tool side: a
# model should learn that what is not a request for a tool is answered in text, not memorise a few sentences.
# Each family is one phrasing form; its fills vary per example. (Written for the data; the golden suite is the
# measure and decontamination drops any example too close to one of its cases.)
GREETINGS = (("Hello", "Hi there", "Good evening", "Morning", "Howdy", "Hiya", "Greetings", "Evening"),
             ("", "!", ", how are you today?", ", how's your day been?", ", what's new?", ", anybody there?", " :)"),
             "Hello! I'm here. What can I do for you?")
CLOSINGS = (("Thank you", "Thanks a lot", "Many thanks", "Much appreciated", "Perfect", "Awesome", "Nice work",
             "Brilliant", "Lovely"),
            ("", "!", ", that helps", ", see you later", ", I'm all set", ", nothing else needed", ", good night"),
            "You're welcome! Just ask whenever you need something.")
CAPABILITY = (
    ("What are you able to do?", "I can add tasks, put events on your calendar, check the weather and send emails for you."),
    ("How can you help me?", "I can manage your tasks and calendar, check the weather, and send emails. Just tell me what you need."),
    ("What sort of requests do you handle?", "Tasks, calendar events, weather and emails: ask me to add, change, check or send."),
    ("Are you able to read my emails?", "No. I can send emails for you, but I can't read your inbox."),
    ("Can you browse the web?", "No, I can't browse the web. I can check the weather, manage tasks and your calendar, and send emails."),
    ("Do you remember what we talked about last week?", "I only see this conversation, not earlier ones."),
    ("Are you a real person?", "No, I'm an AI assistant. I can help with your tasks, calendar, weather and email."),
    ("What can't you do?",
     "I can't make calls, place orders, browse the web or control devices. I can do tasks, calendar, weather and email."),
)
KNOWLEDGE = (
    ("Who invented the telephone?", "Alexander Graham Bell is credited with inventing the telephone, in 1876."),
    ("Who discovered penicillin?", "Alexander Fleming discovered penicillin in 1928."),
    ("Who composed the Moonlight Sonata?", "Ludwig van Beethoven composed it."),
    ("Who directed the film Jaws?", "Steven Spielberg directed Jaws."),
    ("Who painted The Starry Night?", "Vincent van Gogh painted The Starry Night, in 1889."),
    ("What is the tallest mountain on Earth?", "Mount Everest, at about 8,849 metres."),
    ("What is the chemical symbol for gold?", "Au."),
    ("Why is the sky blue?", "Air scatters blue light more than red light, so the sky looks blue."),
    ("When did the Berlin Wall fall?", "On 9 November 1989."),
    ("How far is the Moon from Earth?", "About 384,400 km on average."),
    ("What's the square root of 144?", "12."),
    ("How many legs does a spider have?", "Eight."),
)
CREATIVE_FORMS = ("Write a short poem about {t}.", "Tell me a fun fact about {t}.", "Describe {t} in one sentence.",
                  "Give me a riddle about {t}.", "Make up a two-line story about {t}.")
CREATIVE_TOPICS = ("the ocean", "autumn", "coffee", "cats", "mountains", "trains", "the moon", "rain")
CREATIVE_ANSWERS = ("Here's a short one about {t}:\n{T}, quiet and wide,\nyou carry the day on your side.",
                    "A fun fact about {t}: people have written about {t} for thousands of years.",
                    "{T}: simple, familiar, and somehow new every time.",
                    "Here's a riddle: what is {t}, but never the same twice? (Answer: {t}.)",
                    "{T} waited all morning. By evening, everyone had a story about it.")
ADVICE_FORMS = ("How can I {x}?", "Any advice on how to {x}?", "What's the best way to {x}?", "I want to {x}. Ideas?")
ADVICE = (("learn a new language", "Practise a little every day, speak from the start, and use spaced-repetition flashcards."),
          ("save money on groceries", "Plan meals for the week, shop with a list, and buy staples in bulk."),
          ("get better at public speaking", "Rehearse out loud, record yourself, and start with small audiences."),
          ("keep houseplants alive", "Check the soil before watering, give them the right light, and don't overwater."),
          ("run my first 5k", "Build up with run-walk intervals three times a week for about eight weeks."),
          ("read more books", "Keep a book with you, read a few pages at set times, and drop books you don't enjoy."))


def _composed(first: tuple[str, ...], second: tuple[str, ...], answer: str):
    def build(rng: random.Random, now: datetime) -> Turns:
        return [("user", rng.choice(first) + rng.choice(second)), ("assistant", answer)]
    return build


def _creative(index: int):
    def build(rng: random.Random, now: datetime) -> Turns:
        topic = rng.choice(CREATIVE_TOPICS)
        answer = CREATIVE_ANSWERS[index].format(t=topic, T=topic[0].upper() + topic[1:])
        return [("user", rng.choice(OPENERS) + CREATIVE_FORMS[index].format(t=topic)), ("assistant", answer)]
    return build


def _advice(index: int):
    def build(rng: random.Random, now: datetime) -> Turns:
        goal, answer = ADVICE[index]
        return [("user", rng.choice(OPENERS) + rng.choice(ADVICE_FORMS).format(x=goal)), ("assistant", answer)]
    return build


def no_tool_phrasings() -> list[Phrasing]:
    sets = {"smalltalk": SMALL_TALK, "outofscope": OUT_OF_SCOPE, "vague": VAGUE, "toolq": _tool_questions(),
            "capability": CAPABILITY}
    out = [Phrasing(f"notool-{name}", i, "no_tool", _fixed(pairs, i)) for name, pairs in sets.items() for i in range(len(pairs))]
    out += [Phrasing("notool-greeting", 0, "no_tool", _composed(*GREETINGS)),
            Phrasing("notool-closing", 0, "no_tool", _composed(*CLOSINGS))]
    return out + [Phrasing("notool-after", i, "no_tool", _after_result(i)) for i in range(len(AFTER_RESULT))]


def general_phrasings() -> list[Phrasing]:
    out = [Phrasing("general-facts", i, "general", _fixed(FACTS, i)) for i in range(len(FACTS))]
    out += [Phrasing("general-advice", i, "general", _fixed(ADVICE_FIXED, i)) for i in range(len(ADVICE_FIXED))]
    out += [Phrasing("general-knowledge", i, "general", _fixed(KNOWLEDGE, i)) for i in range(len(KNOWLEDGE))]
    out += [Phrasing("general-creative", i, "general", _creative(i)) for i in range(len(CREATIVE_FORMS))]
    out += [Phrasing("general-howto", i, "general", _advice(i)) for i in range(len(ADVICE))]
    out += [Phrasing("general-math", i, "general", _arithmetic(i)) for i in range(3)]
    out += [Phrasing("general-units", i, "general", _conversion(i)) for i in range(3)]
    return out
