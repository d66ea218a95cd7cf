"""The workout-program task (seed 000): a model writes a multi-day training program as one JSON object from a
request (days per week, goal, optional split, the exercises available per muscle group), judged by named rules
rather than by expected tool calls. Pure core: cases, parsing, rules, metrics, the template builder."""
