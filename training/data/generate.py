"""The template generator: intents x phrasings x slot values -> conversations with their ideal replies.

Every phrasing is a *group*: all expansions of one phrasing stay in the same split, so paraphrases
of one source never straddle train and holdout. Relative dates are resolved against each
example's own "now", which varies, so the model has to read the date from the system prompt.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from training.data.examples import call, reply, tool_result
from training.data.vocab import (
    CITIES,
    EMAIL_TOPICS,
    ERRANDS,
    EVENTS,
    PAIR_SUBJECTS,
    PLACES,
    RELATIONS,
    When,
    day_phrase,
    email_address,
    fill,
    iso_minute,
    person,
    time_phrase,
    typo,
)

Turns = list[tuple[str, str]]
Builder = Callable[[random.Random, datetime], Turns]


@dataclass(frozen=True)
class Phrasing:
    family: str
    index: int
    kind: str
    build: Builder
    whole_family: bool = False  # one group for the family (both sides of a contrastive subject)

    @property
    def group(self) -> str:
        return self.family if self.whole_family else f"{self.family}/{self.index}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _maybe_typo(text: str, rng: random.Random, p: float = 0.12) -> str:
    return typo(text, rng) if rng.random() < p else text


# -- single-call intents ------------------------------------------------------------------------

def _task(rng: random.Random, now: datetime) -> tuple[str, dict, str, When | None]:
    """(how the user says the errand, createTask params, priority phrase, due)."""
    name, city = person(rng), rng.choice(CITIES)
    title_t, said_t = rng.choice(ERRANDS)
    title, said = fill(title_t, rng, name=name, city=city), fill(said_t, rng, name=name, city=city)
    params: dict = {"title": title, "priority": "medium"}
    prio_text = ""
    roll = rng.random()
    if roll < 0.2:
        prio_text, params["priority"] = rng.choice([(" It's urgent.", "high"), (", high priority", "high"),
                                                     (" - important!", "high")])
    elif roll < 0.32:
        prio_text, params["priority"] = rng.choice([(", low priority", "low"), (". No rush.", "low")])
    due = day_phrase(rng, now) if rng.random() < 0.6 else None
    if due:
        params["dueDate"] = due.day.isoformat()
    return said, params, prio_text, due


def _due_text(due: When | None, rng: random.Random) -> str:
    if due is None:
        return ""
    if due.text.startswith("on ") and rng.random() < 0.5:
        return " by " + due.text[3:]
    return " " + due.text


TASK_FORMS = (
    "Remind me to {said}{due}{prio}",
    "add a task: {said}{due}{prio}",
    "Please add \"{Said}\" to my to-do list{due}{prio}.",
    "todo {said}{due}{prio}",
    "I need to {said}{due}{prio}, can you put that on my list?",
    "Could you create a task to {said}{due}{prio}?",
    "don't let me forget to {said}{due}{prio}",
    "Make a note that I have to {said}{due}{prio}.",
    "new task - {said}{due}{prio}",
    "I'd like a reminder to {said}{due}{prio}, please.",
    "Put \"{said}\" on my tasks{due}{prio}",
    "Kindly record a to-do item: {said}{due}{prio}.",
)


def task_form(form: str) -> Builder:
    def build(rng: random.Random, now: datetime) -> Turns:
        said, params, prio, due = _task(rng, now)
        text = form.format(said=said, Said=_cap(said), due=_due_text(due, rng), prio=prio)
        return [("user", _maybe_typo(text, rng)), ("assistant", reply(call("createTask", **params)))]
    return build


def _event(rng: random.Random, now: datetime) -> tuple[str, dict, str]:
    """(how the user says the event, createCalendarEvent params, the when-text)."""
    name = person(rng)
    summary_t, said_t = rng.choice(EVENTS)
    summary, said = fill(summary_t, rng, name=name), fill(said_t, rng, name=name)
    params: dict = {"summary": summary}
    if rng.random() < 0.15:
        hours = rng.randrange(1, 6)
        start = (now + timedelta(hours=hours)).replace(second=0, microsecond=0)
        params["startTime"] = iso_minute(start.date(), start.hour, start.minute)
        when_text = f"in {hours} hour{'s' if hours > 1 else ''}"
    else:
        day = day_phrase(rng, now)
        time_text, hour, minute = time_phrase(rng)
        params["startTime"] = iso_minute(day.day, hour, minute)
        when_text = f"{day.text} {time_text}"
        if rng.random() < 0.3:
            minutes = rng.choice((30, 45, 60, 90, 120))
            end = datetime(day.day.year, day.day.month, day.day.day, hour, minute) + timedelta(minutes=minutes)
            params["endTime"] = iso_minute(end.date(), end.hour, end.minute)
            when_text += f" for {minutes // 60} hour{'s' if minutes > 60 else ''}" if minutes % 60 == 0 else f" for {minutes} minutes"
    if rng.random() < 0.3:
        params["location"] = rng.choice(PLACES)
        when_text += f" at {params['location']}" if not params["location"].startswith("Zoom") else " on Zoom"
    return said, params, when_text


EVENT_FORMS = (
    "Schedule {said} {when}.",
    "Put {said} on my calendar {when}",
    "Book {said} {when}, please.",
    "{Said} {when} - add it to my calendar",
    "Can you block time {when} for {said}?",
    "I have {said} {when}. Please add it to the calendar.",
    "calendar: {said} {when}",
    "Please create a calendar event for {said} {when}.",
    "add {said} {when} to my schedule",
    "Would you set up {said} {when}?",
)


def event_form(form: str) -> Builder:
    def build(rng: random.Random, now: datetime) -> Turns:
        said, params, when = _event(rng, now)
        text = form.format(said=said, Said=_cap(said), when=when)
        return [("user", _maybe_typo(text, rng)), ("assistant", reply(call("createCalendarEvent", **params)))]
    return build


WEATHER_FORMS = (
    ("What's the weather in {city}{day}?", True),
    ("weather {city}{day}", True),
    ("Will it rain in {city}{day}?", True),
    ("How warm will it be in {city}{day}?", True),
    ("Is it cold in {city} right now?", False),
    ("Can you check the forecast for {city}{day}?", True),
    ("Do I need an umbrella in {city}{day}?", True),
    ("whats it like outside in {city}", False),
    ("I'm heading to {city}{day}. What's the weather going to be?", True),
    ("Current conditions in {city}, please.", False),
)


def weather_form(form: str, dated: bool) -> Builder:
    def build(rng: random.Random, now: datetime) -> Turns:
        city = rng.choice(CITIES)
        params: dict = {"location": city}
        day_text = ""
        if dated and rng.random() < 0.75:
            day = day_phrase(rng, now)
            day_text, params["date"] = " " + day.text, day.day.isoformat()
        text = form.format(city=city, day=day_text)
        return [("user", _maybe_typo(text, rng, 0.08)), ("assistant", reply(call("getWeather", **params)))]
    return build


EMAIL_FORMS = (
    "Email {to} that {clause}.",
    "Send {to} an email saying {clause}.",
    "Write to {to} with the subject \"{subject}\": {body}",
    "shoot {to} an email - {clause}",
    "Please send an email to {to}: {body}",
    "Could you let {to} know by email that {clause}?",
    "email {to} subject {subject} body {body}",
    "Drop {to} a quick email: {body}",
)


def email_form(form: str) -> Builder:
    def build(rng: random.Random, now: datetime) -> Turns:
        to = rng.choice([email_address(rng), person(rng), rng.choice(RELATIONS)])
        subject, clause, body = rng.choice(EMAIL_TOPICS)
        text = form.format(to=to, clause=clause, subject=subject, body=body)
        params = {"to": to, "subject": subject, "body": body}
        return [("user", _maybe_typo(text, rng, 0.08)), ("assistant", reply(call("sendEmail", **params)))]
    return build


LIST_FORMS = (
    ("What's still open on my list?", "open", False),
    ("Can I see the tasks I haven't done yet?", "open", False),
    ("tasks pls", "open", False),
    ("Which tasks have I already finished?", "completed", False),
    ("Show me all my tasks, done or not.", "all", False),
    ("What do I still have to do before {day}?", "open", True),
    ("Any tasks due by {day}?", "open", True),
    ("which ones did I tick off already", "completed", False),
    ("What's left on my plate?", "open", False),
    ("Pull up every task I have, including finished ones.", "all", False),
)


def list_form(form: str, status: str, dated: bool) -> Builder:
    def build(rng: random.Random, now: datetime) -> Turns:
        params: dict = {"status": status}
        text = form
        if dated:
            day = day_phrase(rng, now, allow_today=False)
            text = form.format(day=day.text.removeprefix("on "))
            params["dueBefore"] = day.day.isoformat()
        return [("user", text), ("assistant", reply(call("listTasks", **params)))]
    return build


# -- threading ids across turns -----------------------------------------------------------------

def _task_id(rng: random.Random) -> str:
    return rng.choice([f"task_{rng.randrange(100, 9999)}", f"tsk-{rng.randrange(16**4):04x}", f"t{rng.randrange(10, 999)}"])


def _event_id(rng: random.Random) -> str:
    return rng.choice([f"evt_{rng.randrange(100, 9999)}", f"event-{rng.randrange(16**4):04x}", f"cal_{rng.randrange(10, 999)}"])


def _created_task(rng: random.Random, now: datetime) -> tuple[Turns, str, dict]:
    said, params, prio, due = _task(rng, now)
    task_id = _task_id(rng)
    opener = rng.choice(("Remind me to {s}{d}", "Add a task to {s}{d}", "todo: {s}{d}")).format(s=said, d=_due_text(due, rng))
    turns = [("user", opener), ("assistant", reply(call("createTask", **params))),
             ("tool", tool_result("createTask", {"taskId": task_id}))]
    return turns, task_id, params


TASK_FOLLOWUPS = {
    "complete": ("Done!", "I did it, mark it complete", "finished that one", "ok that's done now",
                 "You can tick that off.", "Completed, thanks."),
    "priority": ("Make it high priority.", "actually that's urgent", "Lower the priority, it can wait.",
                 "set priority to low"),
    "due": ("Actually it's due {day}.", "change the due date to {day}", "Push it to {day}."),
    "rename": ("Rename it to \"{title}\".", "call it \"{title}\" instead"),
    "delete": ("Never mind, delete it.", "remove that task", "scratch that one", "Please delete it, I don't need it anymore."),
}


def task_followup(action: str, index: int) -> Builder:
    def build(rng: random.Random, now: datetime) -> Turns:
        turns, task_id, created = _created_task(rng, now)
        form = TASK_FOLLOWUPS[action][index]
        if action == "complete":
            return turns + [("user", form), ("assistant", reply(call("completeTask", taskId=task_id)))]
        if action == "delete":
            return turns + [("user", form), ("assistant", reply(call("deleteTask", taskId=task_id)))]
        if action == "priority":
            level = "low" if ("Lower" in form or "low" in form) else "high"
            return turns + [("user", form), ("assistant", reply(call("updateTask", taskId=task_id, priority=level)))]
        if action == "due":
            day = day_phrase(rng, now, allow_today=False)
            text = form.format(day=day.text)
            return turns + [("user", text), ("assistant", reply(call("updateTask", taskId=task_id, dueDate=day.day.isoformat())))]
        title = fill(rng.choice(ERRANDS)[0], rng)
        return turns + [("user", form.format(title=title)), ("assistant", reply(call("updateTask", taskId=task_id, title=title)))]
    return build


ORDINALS = ("first", "second", "third", "fourth")
LIST_ACTIONS = (
    ("Mark the {ord} one as done.", "completeTask"),
    ("the {ord} one is finished", "completeTask"),
    ("Delete the {ord} task.", "deleteTask"),
    ("remove the one about {word}", "deleteTask"),
    ("Bump the {ord} one to high priority.", "updateTask"),
    ("I finished \"{title}\", tick it off", "completeTask"),
)


def list_then_act(index: int) -> Builder:
    def build(rng: random.Random, now: datetime) -> Turns:
        titles = rng.sample([fill(e[0], rng) for e in ERRANDS], rng.randrange(3, 5))
        tasks = [{"taskId": _task_id(rng), "title": t} for t in titles]
        if len({t["taskId"] for t in tasks}) < len(tasks):
            tasks = [{"taskId": f"task_{100 + i}", "title": t} for i, t in enumerate(titles)]
        k = rng.randrange(len(tasks))
        form, tool = LIST_ACTIONS[index]
        word = max(tasks[k]["title"].split(), key=len)
        if sum(word.lower() in t["title"].lower() for t in tasks) > 1:
            form = "Delete the {ord} task."
        text = form.format(ord=ORDINALS[k], word=word.lower(), title=tasks[k]["title"])
        params = {"taskId": tasks[k]["taskId"], **({"priority": "high"} if tool == "updateTask" else {})}
        return [
            ("user", rng.choice(("Pull up my unfinished tasks.", "what do I still need to do?", "Read me my task list."))),
            ("assistant", reply(call("listTasks", status="open"))),
            ("tool", tool_result("listTasks", {"tasks": tasks})),
            ("user", text), ("assistant", reply(call(tool, **params))),
        ]
    return build


EVENT_FOLLOWUPS = (
    ("Move it one hour earlier.", "shift", -60),
    ("Push it back 30 minutes.", "shift", 30),
    ("can we do two hours later?", "shift", 120),
    ("Move it to {day}, same time.", "day", 0),
    ("Change the location to {place}.", "location", 0),
    ("Cancel it.", "delete", 0),
    ("Take it off my calendar.", "delete", 0),
    ("That got called off, remove it please.", "delete", 0),
)


def event_followup(index: int) -> Builder:
    def build(rng: random.Random, now: datetime) -> Turns:
        said, params, when = _event(rng, now)
        event_id = _event_id(rng)
        turns: Turns = [("user", f"{rng.choice(('Schedule', 'Add', 'Put'))} {said} {when}"),
                        ("assistant", reply(call("createCalendarEvent", **params))),
                        ("tool", tool_result("createCalendarEvent", {"eventId": event_id}))]
        form, action, minutes = EVENT_FOLLOWUPS[index]
        if action == "delete":
            return turns + [("user", form), ("assistant", reply(call("deleteCalendarEvent", eventId=event_id)))]
        if action == "location":
            place = rng.choice([p for p in PLACES if p != params.get("location")])
            update = {"location": place}
            form = form.format(place=place)
        else:
            start = datetime.fromisoformat(params["startTime"])
            if action == "shift":
                new_start = start + timedelta(minutes=minutes)
            else:
                day = day_phrase(rng, now, allow_today=False)
                while day.day == start.date():
                    day = day_phrase(rng, now, allow_today=False)
                new_start = datetime.combine(day.day, start.time())
                form = form.format(day=day.text.removeprefix("on "))
            update = {"startTime": iso_minute(new_start.date(), new_start.hour, new_start.minute)}
            if "endTime" in params:
                end = datetime.fromisoformat(params["endTime"]) + (new_start - start)
                update["endTime"] = iso_minute(end.date(), end.hour, end.minute)
        return turns + [("user", form), ("assistant", reply(call("updateCalendarEvent", eventId=event_id, **update)))]
    return build


# -- contrastive pairs and multi-tool -----------------------------------------------------------

PAIR_TASK_FORMS = ("Remind me to {todo}{due}.", "Set a reminder to {todo}{due}", "add to my to-do list: {todo}{due}",
                   "I must {todo}{due} - note it down")
PAIR_EVENT_FORMS = ("Block {day} {time} for the {event}.", "Put the {event} on my calendar {day} {time}",
                    "Add the {event} to my calendar {day} {time}.", "Schedule the {event} {day} {time}")


def _pair_sides(subject: int, rng: random.Random, now: datetime) -> tuple[dict, dict, str, str, When, str]:
    todo_t, event_t, _ = PAIR_SUBJECTS[subject]
    name = person(rng)
    todo, event = fill(todo_t, rng, name=name), fill(event_t, rng, name=name)
    day = day_phrase(rng, now)
    time_text, hour, minute = time_phrase(rng)
    task = call("createTask", title=_cap(todo), priority="medium", **({"dueDate": day.day.isoformat()} if rng.random() < 0.5 else {}))
    ev = call("createCalendarEvent", summary=_cap(event), startTime=iso_minute(day.day, hour, minute))
    return task, ev, todo, event, day, time_text


def pair_side(subject: int, side: str) -> Builder:
    """One side of a contrastive pair: the same subject as a to-do (remind me) or as blocked time."""
    def build(rng: random.Random, now: datetime) -> Turns:
        task, ev, todo, event, day, time_text = _pair_sides(subject, rng, now)
        if side == "task":
            due = When(day.text, day.day) if "dueDate" in task["params"] else None
            text = rng.choice(PAIR_TASK_FORMS).format(todo=todo, due=_due_text(due, rng))
            return [("user", _maybe_typo(text, rng, 0.08)), ("assistant", reply(task))]
        text = rng.choice(PAIR_EVENT_FORMS).format(event=event, day=day.text, time=time_text)
        return [("user", _maybe_typo(text, rng, 0.08)), ("assistant", reply(ev))]
    return build


def pair_both(subject: int) -> Builder:
    """The same subject needing both: a to-do and the time blocked."""
    def build(rng: random.Random, now: datetime) -> Turns:
        task, ev, todo, event, day, time_text = _pair_sides(subject, rng, now)
        task["params"].pop("dueDate", None)
        text = rng.choice(("Remind me to {todo} and also block {day} {time} for the {event}.",
                           "Two things: a reminder to {todo}, and put the {event} on my calendar {day} {time}.")
                          ).format(todo=todo, event=event, day=day.text, time=time_text)
        return [("user", text), ("assistant", reply(task, ev))]
    return build


def multi_tool(index: int) -> Builder:
    def build(rng: random.Random, now: datetime) -> Turns:
        if index == 0:
            a, b = rng.sample(CITIES, 2)
            day = day_phrase(rng, now)
            text = f"Compare the weather in {a} and {b} {day.text}."
            calls = [call("getWeather", location=a, date=day.day.isoformat()), call("getWeather", location=b, date=day.day.isoformat())]
        elif index == 1:
            said, params, when = _event(rng, now)
            to = email_address(rng)
            text = f"Schedule {said} {when} and email {to} to let them know."
            body = f"Quick note: {params['summary']} is on my calendar for {params['startTime'].replace('T', ' at ')}."
            calls = [call("createCalendarEvent", **params), call("sendEmail", to=to, subject=params["summary"], body=body)]
        elif index == 2:
            (s1, p1, _, _), (s2, p2, _, _) = _task(rng, now), _task(rng, now)
            text = f"Add two tasks: {s1}, and {s2}."
            p1.pop("dueDate", None), p2.pop("dueDate", None)
            p1["priority"] = p2["priority"] = "medium"
            calls = [call("createTask", **p1), call("createTask", **p2)]
        else:
            city = rng.choice(CITIES)
            text = f"What's on my to-do list, and what's the weather in {city} right now?"
            calls = [call("listTasks", status="open"), call("getWeather", location=city)]
        return [("user", text), ("assistant", reply(*calls))]
    return build


# -- the families and their default sizes -------------------------------------------------------

@dataclass(frozen=True)
class Composition:
    """How many examples each family gets (the plan's targets are the defaults)."""

    per_single_tool: int = 60       # createTask, createCalendarEvent, getWeather, sendEmail, listTasks
    per_id_tool: int = 40           # updateTask, completeTask, deleteTask, updateCalendarEvent, deleteCalendarEvent
    list_then_act: int = 70
    contrastive_pairs: int = 75     # createTask vs createCalendarEvent, same subject
    both_pairs: int = 20            # the same subject needing both calls
    multi_tool: int = 50
    no_tool_fraction: float = 0.13  # of the whole set
    general_fraction: float = 0.10  # plain instruction mix against forgetting


def phrasings() -> list[tuple[Phrasing, str]]:
    """Every phrasing with the target-count key it draws from."""
    out: list[tuple[Phrasing, str]] = []
    out += [(Phrasing("task", i, "single", task_form(f)), "createTask") for i, f in enumerate(TASK_FORMS)]
    out += [(Phrasing("event", i, "single", event_form(f)), "createCalendarEvent") for i, f in enumerate(EVENT_FORMS)]
    out += [(Phrasing("weather", i, "single", weather_form(f, d)), "getWeather") for i, (f, d) in enumerate(WEATHER_FORMS)]
    out += [(Phrasing("email", i, "single", email_form(f)), "sendEmail") for i, f in enumerate(EMAIL_FORMS)]
    out += [(Phrasing("list", i, "single", list_form(*f)), "listTasks") for i, f in enumerate(LIST_FORMS)]
    for action, tool in (("complete", "completeTask"), ("delete", "deleteTask")):
        out += [(Phrasing(f"task-{action}", i, "multi_turn", task_followup(action, i)), tool)
                for i in range(len(TASK_FOLLOWUPS[action]))]
    for action in ("priority", "due", "rename"):
        out += [(Phrasing(f"task-{action}", i, "multi_turn", task_followup(action, i)), "updateTask")
                for i in range(len(TASK_FOLLOWUPS[action]))]
    for i, (_, action, _) in enumerate(EVENT_FOLLOWUPS):
        tool = "deleteCalendarEvent" if action == "delete" else "updateCalendarEvent"
        out.append((Phrasing("event-followup", i, "multi_turn", event_followup(i)), tool))
    out += [(Phrasing("list-act", i, "multi_turn", list_then_act(i)), "list_then_act") for i in range(len(LIST_ACTIONS))]
    for s in range(len(PAIR_SUBJECTS)):
        out.append((Phrasing(f"pair-{s}", 0, "contrastive", pair_side(s, "task"), True), "contrastive"))
        out.append((Phrasing(f"pair-{s}", 1, "contrastive", pair_side(s, "event"), True), "contrastive"))
        out.append((Phrasing(f"pair-{s}", 2, "multi_tool", pair_both(s), True), "both_pairs"))
    out += [(Phrasing("multi", i, "multi_tool", multi_tool(i)), "multi_tool") for i in range(4)]
    return out


def targets(comp: Composition) -> dict[str, int]:
    singles = ("createTask", "createCalendarEvent", "getWeather", "sendEmail", "listTasks")
    ids = ("updateTask", "completeTask", "deleteTask", "updateCalendarEvent", "deleteCalendarEvent")
    return {**{t: comp.per_single_tool for t in singles}, **{t: comp.per_id_tool for t in ids},
            "list_then_act": comp.list_then_act, "contrastive": 2 * comp.contrastive_pairs,
            "both_pairs": comp.both_pairs, "multi_tool": comp.multi_tool}
