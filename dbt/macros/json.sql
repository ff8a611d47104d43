{#- JSON access differs per engine; models call these, each adapter brings its own. -#}

{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text', 'lakebed')(column, path)) }}
{%- endmacro %}

{% macro default__json_text(column, path) -%}
    json_extract_string({{ column }}, '{{ path }}')
{%- endmacro %}

{#- The JSON type at a path: 'number', 'integer', 'string', 'null', 'other', or null when
    the path is missing. Used by the type contracts. -#}
{% macro json_kind(column, path) -%}
    {{ return(adapter.dispatch('json_kind', 'lakebed')(column, path)) }}
{%- endmacro %}

{% macro default__json_kind(column, path) -%}
    case
        when json_type({{ column }}, '{{ path }}') is null then null
        when json_type({{ column }}, '{{ path }}') in ('UBIGINT', 'BIGINT') then 'integer'
        when json_type({{ column }}, '{{ path }}') = 'DOUBLE' then 'number'
        when json_type({{ column }}, '{{ path }}') = 'VARCHAR' then 'string'
        when json_type({{ column }}, '{{ path }}') = 'NULL' then 'null'
        else 'other'
    end
{%- endmacro %}

{#- An ISO-8601 timestamp with offset, as a UTC timestamp without time zone; null if not
    parseable. -#}
{% macro utc_timestamp(expression) -%}
    {{ return(adapter.dispatch('utc_timestamp', 'lakebed')(expression)) }}
{%- endmacro %}

{% macro default__utc_timestamp(expression) -%}
    (try_cast({{ expression }} as timestamptz) at time zone 'UTC')
{%- endmacro %}
