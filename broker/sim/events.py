"""The kinds of simulation event. The heap orders events by time, then kind, then insertion, so
the numbering is part of the model: at equal times resources are released before they are
claimed, and a run is a pure function of the scenario and the seed."""

END, LOST, OUTAGE_START, OUTAGE_END, STAGED, ARRIVE, BG_ARRIVE = range(7)
NEGOTIATE, PRODUCER, GX_QUEUE, GX_RUNTIME, OUTCOMES, REFRESH, SAMPLE = range(7, 14)
