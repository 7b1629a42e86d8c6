#!/bin/bash -l
#$ -N sortie-pilot.0000
#$ -S /bin/bash
#$ -o /scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.out
#$ -e /scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.err
#$ -wd /scratch/u/sortie.sandbox/session.0000/pilot.0000
#$ -l h_rt=01:30:00
#$ -r n
#$ -pe omp 64
#$ -l h_vmem=100M
#$ -q normal
#$ -P ABC123

cd '/scratch/u/sortie.sandbox/session.0000/pilot.0000' || exit 1
# preBootstrap (resource config)
module load nodejs/20
exec node agent.cjs agent.json
