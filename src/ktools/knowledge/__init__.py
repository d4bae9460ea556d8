"""Knowledge that sticks: what step 04 adds so the student learns the document itself.

Modules (each one job; imports point downward):

- `facts`      sentences, fact spans (dates, amounts, codes, names) and defined terms of a
               markdown document, by rule;
- `questions`  questions written by rule from a sentence and one of its facts;
- `views`      training rows that restate the document's facts in several forms;
- `exam`       the closed-book exam of every corpus, and the leak check against training;
- `rephrase`   a real teacher rewrites the exam's rule questions (not the embedded one);
- `replay`     the base student's own answers to general prompts, against forgetting;
- `corpus`     step 02's chunks and converted markdown, per source;
- `components` all of the above for step 04 (`ktools.mixing.build_mixes` calls it).
"""
