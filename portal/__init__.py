"""The customer portal (installed as usage_billing.portal): each customer's month on one page.

`usage-billing portal` serves it; `usage-billing portal link --customer ID` prints a signed link
to it (`links`). The page shows what is billed so far by line item, where the bill is heading
with its 80 % range, the days with unusual usage and the commit burn-down (`figures`, drawn as
plain SVG by `charts`); a JSON endpoint behind the same link serves the same figures.
"""
