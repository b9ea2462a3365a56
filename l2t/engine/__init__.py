"""The student engine (docs/design.md §3): a student as a value (`student_state`), the
task that trains it (`task`), one teacher step (`lifetime`), many at once (`population`), a
whole student (`teaching`) and the judgement of teachers (`selection`). Imports no teacher,
env or command."""
