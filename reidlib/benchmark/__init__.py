"""Course chapter 6 (survey §4.3, Tables 3-5): the survey's results as data, and our own
benchmark table regenerated from the course's recorded runs."""
