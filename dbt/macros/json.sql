{#- JSON access differs per engine; models call these, each adapter brings its own. -#}

{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text', 'lakebed')(column, path)) }}
{%- endmacro %}

{% macro default__json_text(column, path) -%}
    json_extract_string({{ column }}, '{{ path }}')
{%- endmacro %}

{#- An ISO-8601 timestamp with offset, as a UTC timestamp without time zone; null if not
    parseable. -#}
{% macro utc_timestamp(expression) -%}
    {{ return(adapter.dispatch('utc_timestamp', 'lakebed')(expression)) }}
{%- endmacro %}

{% macro default__utc_timestamp(expression) -%}
    (try_cast({{ expression }} as timestamptz) at time zone 'UTC')
{%- endmacro %}

{#- Several paths at once: a list of texts (null where a path is missing). One call per
    row parses the JSON once, where one call per path would parse it again each time. -#}
{% macro json_texts(column, paths) -%}
    {{ return(adapter.dispatch('json_texts', 'lakebed')(column, paths)) }}
{%- endmacro %}

{% macro default__json_texts(column, paths) -%}
    json_extract_string({{ column }}, [{% for path in paths %}'{{ path }}'{{ ", " if not loop.last }}{% endfor %}])
{%- endmacro %}

{#- The engine's JSON type names at several paths, as a list (see json_kind_of). -#}
{% macro json_types(column, paths) -%}
    {{ return(adapter.dispatch('json_types', 'lakebed')(column, paths)) }}
{%- endmacro %}

{% macro default__json_types(column, paths) -%}
    json_type({{ column }}, [{% for path in paths %}'{{ path }}'{{ ", " if not loop.last }}{% endfor %}])
{%- endmacro %}

{#- Element of a list, counting from 1 (engines differ in where they start). -#}
{% macro list_at(list, position) -%}
    {{ return(adapter.dispatch('list_at', 'lakebed')(list, position)) }}
{%- endmacro %}

{% macro default__list_at(list, position) -%}
    {{ list }}[{{ position }}]
{%- endmacro %}

{#- An engine JSON type name as 'integer', 'number', 'string', 'null', 'other', or null
    when the path was missing. -#}
{% macro json_kind_of(type_name) -%}
    {{ return(adapter.dispatch('json_kind_of', 'lakebed')(type_name)) }}
{%- endmacro %}

{% macro default__json_kind_of(type_name) -%}
    case {{ type_name }}
        when 'UBIGINT' then 'integer'
        when 'BIGINT' then 'integer'
        when 'DOUBLE' then 'number'
        when 'VARCHAR' then 'string'
        when 'NULL' then 'null'
        else case when {{ type_name }} is not null then 'other' end
    end
{%- endmacro %}

{#- Spark (the cluster profile): JSON is parsed into a VARIANT once per row (Spark
    eliminates the repeated try_parse_json), and read by path from there. -#}

{% macro spark__json_text(column, path) -%}
    variant_get(try_parse_json({{ column }}), '{{ path }}', 'string')
{%- endmacro %}

{% macro spark__utc_timestamp(expression) -%}
    {#- The session time zone is UTC: the instant's wall clock there, without a zone. -#}
    cast(try_cast({{ expression }} as timestamp) as timestamp_ntz)
{%- endmacro %}

{% macro spark__json_texts(column, paths) -%}
    array({% for path in paths %}variant_get(try_parse_json({{ column }}), '{{ path }}', 'string'){{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro spark__json_types(column, paths) -%}
    array({% for path in paths %}schema_of_variant(variant_get(try_parse_json({{ column }}), '{{ path }}')){{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro spark__list_at(list, position) -%}
    element_at({{ list }}, {{ position }})
{%- endmacro %}

{#- Spark's variant types: integers are BIGINT (DECIMAL(p,0) past its range, as DuckDB's
    UBIGINT), numbers with a fraction DECIMAL(p,s) or DOUBLE, JSON null VOID. -#}
{% macro spark__json_kind_of(type_name) -%}
    case
        when {{ type_name }} is null then null
        when {{ type_name }} = 'BIGINT' or {{ type_name }} rlike '^DECIMAL\\(\\d+,\\s*0\\)$' then 'integer'
        when {{ type_name }} = 'DOUBLE' or {{ type_name }} like 'DECIMAL(%' then 'number'
        when {{ type_name }} = 'STRING' then 'string'
        when {{ type_name }} = 'VOID' then 'null'
        else 'other'
    end
{%- endmacro %}
