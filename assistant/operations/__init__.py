"""Hospital operations for staff: demand forecasting, capacity planning, quality
monitoring and regional balancing.

* :mod:`.models` - the operations tables (daily demand history, EMERG hourly arrivals,
  bed census history, final dispositions, the region), on the hospital ``Base``.
* :mod:`.history` - the seeded 180-day demand history (NHAMCS arrival patterns).
* :mod:`.forecast` - ETS / seasonal-naive forecasts with rolling-origin backtests.
* :mod:`.capacity` - the clinic-session plan (HiGHS MIP/LP) against the fixed timetable.
* :mod:`.monitor` - EWMA control charts and alerts; staff final-disposition records.
* :mod:`.region` - regional balancing (HiGHS LP) against nearest-site.

Layer: between ``agent`` and ``triage`` (see ``.importlinter``); imports only
``allocation``, ``hospital``, ``kb``, ``settings`` and ``domain``.
"""
