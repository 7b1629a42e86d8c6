#!/bin/bash -l
#PBS -N sortie-pilot.0000
#PBS -o /scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.out
#PBS -e /scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.err
#PBS -l walltime=01:30:00
#PBS -l select=2:ncpus=32:mpiprocs=32:ngpus=4:mem=2048mb
#PBS -l place=scatter:excl
#PBS -q normal
#PBS -A ABC123
#PBS -r n
#PBS -l job_priority=regular

cd '/scratch/u/sortie.sandbox/session.0000/pilot.0000' || exit 1
# preBootstrap (resource config)
module load nodejs/20
exec node agent.cjs agent.json
