# install-test.cmake: installs the build into a scratch prefix, then builds a consumer
# of it twice, through find_package(soon) and through pkg-config, and runs both.
set(PREFIX ${BIN}/install-test/prefix)
file(REMOVE_RECURSE ${BIN}/install-test)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BIN} --prefix ${PREFIX}
                RESULT_VARIABLE r)
if(r)
  message(FATAL_ERROR "install failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC}/tests/consumer
                        -B ${BIN}/install-test/consumer
                        -DCMAKE_PREFIX_PATH=${PREFIX}
                RESULT_VARIABLE r)
if(r)
  message(FATAL_ERROR "find_package(soon) consumer did not configure")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BIN}/install-test/consumer
                RESULT_VARIABLE r)
if(r)
  message(FATAL_ERROR "find_package(soon) consumer did not build")
endif()
execute_process(COMMAND ${BIN}/install-test/consumer/consumer RESULT_VARIABLE r)
if(r)
  message(FATAL_ERROR "find_package(soon) consumer failed")
endif()
file(GLOB PCDIR LIST_DIRECTORIES true ${PREFIX}/lib*/pkgconfig ${PREFIX}/lib/*/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "${PCDIR}")
execute_process(COMMAND pkg-config --cflags --libs --static soon
                OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE r)
if(r)
  message(FATAL_ERROR "pkg-config does not know soon")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
execute_process(COMMAND cc ${SRC}/tests/consumer/main.c ${flags}
                        -Wl,-rpath,${PREFIX}/lib -o ${BIN}/install-test/pc-consumer
                RESULT_VARIABLE r)
if(r)
  message(FATAL_ERROR "pkg-config consumer did not build")
endif()
file(GLOB LIBDIRS LIST_DIRECTORIES true ${PREFIX}/lib*/ ${PREFIX}/lib/*/)
string(REPLACE ";" ":" LIBPATH "${LIBDIRS}")
set(ENV{LD_LIBRARY_PATH} "${LIBPATH}")
execute_process(COMMAND ${BIN}/install-test/pc-consumer RESULT_VARIABLE r)
if(r)
  message(FATAL_ERROR "pkg-config consumer failed")
endif()
