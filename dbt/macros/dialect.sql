{#- Where DuckDB (local profile) and Spark (cluster profile) spell the same thing
    differently. Models call these; each engine brings its own. -#}

{#- A timestamp with time zone from ISO text, e.g. '2018-04-01 00:00:00+00'. -#}
{% macro timestamptz_literal(text) -%}
    {{ return(adapter.dispatch('timestamptz_literal', 'lakebed')(text)) }}
{%- endmacro %}

{% macro default__timestamptz_literal(text) -%}
    cast('{{ text }}' as timestamptz)
{%- endmacro %}

{#- Spark's TIMESTAMP is the instant (Iceberg's timestamptz). -#}
{% macro spark__timestamptz_literal(text) -%}
    cast('{{ text }}' as timestamp)
{%- endmacro %}

{#- One row per day from first_day to last_day (dates), as a column date_day. -#}
{% macro days_between(first_day, last_day) -%}
    {{ return(adapter.dispatch('days_between', 'lakebed')(first_day, last_day)) }}
{%- endmacro %}

{% macro default__days_between(first_day, last_day) -%}
    cast(unnest(generate_series({{ first_day }}, {{ last_day }}, interval 1 day)) as date) as date_day
{%- endmacro %}

{% macro spark__days_between(first_day, last_day) -%}
    explode(sequence({{ first_day }}, {{ last_day }}, interval 1 day)) as date_day
{%- endmacro %}

{#- ISO day of week: Monday 1 .. Sunday 7. -#}
{% macro iso_day_of_week(day) -%}
    {{ return(adapter.dispatch('iso_day_of_week', 'lakebed')(day)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(day) -%}
    isodow({{ day }})
{%- endmacro %}

{% macro spark__iso_day_of_week(day) -%}
    extract(dayofweek_iso from {{ day }})
{%- endmacro %}

{#- The English day name in full: 'Monday'. -#}
{% macro day_name(day) -%}
    {{ return(adapter.dispatch('day_name', 'lakebed')(day)) }}
{%- endmacro %}

{% macro default__day_name(day) -%}
    dayname({{ day }})
{%- endmacro %}

{% macro spark__day_name(day) -%}
    date_format({{ day }}, 'EEEE')
{%- endmacro %}

{#- The day of the month, 1..31. -#}
{% macro day_of_month(day) -%}
    {{ return(adapter.dispatch('day_of_month', 'lakebed')(day)) }}
{%- endmacro %}

{% macro default__day_of_month(day) -%}
    day({{ day }})
{%- endmacro %}

{% macro spark__day_of_month(day) -%}
    dayofmonth({{ day }})
{%- endmacro %}

{#- The mean of a decimal column as a double: DuckDB's avg of a decimal already is one;
    Spark's would be a decimal rounded to six more places, so it averages doubles (it
    may be a window function: the cast goes inside). -#}
{% macro mean(expression) -%}
    {{ return(adapter.dispatch('mean', 'lakebed')(expression)) }}
{%- endmacro %}

{% macro default__mean(expression) -%}
    avg({{ expression }})
{%- endmacro %}

{% macro spark__mean(expression) -%}
    avg(cast({{ expression }} as double))
{%- endmacro %}
