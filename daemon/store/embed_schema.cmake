# cmake -DOUT=file.c -DFILES="a.sql;b.sql" -P embed_schema.cmake
# Emits `const struct schema_migration schema_migrations[]` in file order; the number in each
# file name must equal its position (0001 first), which the store checks at start.
set(body "/* Generated from the schema/ migrations by embed_schema.cmake. Do not edit. */\n#include \"store/schema.h\"\n\n")
set(table "const struct schema_migration schema_migrations[] = {\n")
set(i 0)
foreach(f ${FILES})
  math(EXPR i "${i} + 1")
  get_filename_component(base ${f} NAME)
  string(REGEX MATCH "^([0-9]+)_" _ ${base})
  math(EXPR num "${CMAKE_MATCH_1}")
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "static const char migration_${i}[] = {${bytes}0x00};\n")
  string(APPEND table "    { ${num}, \"${base}\", migration_${i} },\n")
endforeach()
string(APPEND table "};\nconst unsigned schema_migration_count = ${i};\n")
file(WRITE ${OUT} "${body}\n${table}")
