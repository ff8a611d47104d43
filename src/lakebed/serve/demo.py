"""Example gold queries shown at the end of ``make demo``: what the lakehouse answers.

Written to run unchanged on both profiles' engines (DuckDB, and Trino after the guard
rewrites them): no ``USING`` joins whose columns are then qualified, which Trino refuses."""

from __future__ import annotations

EXAMPLE_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "Fraud by merchant category (labels known so far)",
        """
SELECT merchant_category,
       sum(transactions) AS transactions,
       sum(frauds) AS frauds,
       round(100.0 * sum(frauds) / sum(transactions), 3) AS fraud_rate_pct,
       sum(fraud_amount) AS fraud_amount
FROM gold.fraud_kpis_daily
GROUP BY merchant_category
ORDER BY fraud_amount DESC
LIMIT 5
""",
    ),
    (
        "Weekly fraud amount by pattern",
        """
SELECT d.year, d.iso_week,
       sum(k.fraud_amount_high_amount) AS high_amount,
       sum(k.fraud_amount_compromised_terminal) AS compromised_terminal,
       sum(k.fraud_amount_compromised_card) AS compromised_card
FROM gold.fraud_kpis_daily AS k
JOIN gold.dim_date AS d ON d.date_day = k.event_date
GROUP BY d.year, d.iso_week
ORDER BY d.year, d.iso_week
LIMIT 6
""",
    ),
    (
        "Riskiest terminals, ranked with a window function",
        """
WITH per_terminal AS (
    SELECT f.terminal_id, t.merchant_category,
           count(*) AS transactions,
           count(*) FILTER (WHERE f.is_fraud) AS frauds
    FROM gold.fct_transactions AS f
    JOIN gold.dim_terminal AS t ON t.terminal_id = f.terminal_id
    GROUP BY f.terminal_id, t.merchant_category
)
SELECT terminal_id, merchant_category, transactions, frauds,
       rank() OVER (ORDER BY frauds DESC, terminal_id) AS risk_rank,
       round(100.0 * frauds / sum(frauds) OVER (), 2) AS share_of_all_frauds_pct
FROM per_terminal
ORDER BY risk_rank
LIMIT 5
""",
    ),
)
